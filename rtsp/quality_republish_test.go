package rtsp

import (
	"testing"
	"time"
)

// An RTMP switch publishes again. What the old stream queued goes to the old publish, and none
// of the new stream: the new publish gets the new stream from its keyframe, out of the GOP
// cache, its timestamps going on after the old publish's last. So no frame is lost with the
// queue, and none reaches the server twice.
func TestRepublishLeavesTheQueueToTheOldPublishAndTheNewStreamToTheNext(t *testing.T) {
	f := cachedForwarder(t, NewCacheBudget(8<<20), 256)
	at := time.Now()
	f.restartSink(at, time.Time{})
	// The old publish has not written the main stream's last GOP when the substream's keyframe
	// comes.
	_, at = pushGOP(f, 90000, 5, 200, at)
	f.holdForRepublish()
	f.setTracks(codecH264, []int{90000, 8000}, [3][]byte{nil, testSPS, testPPS})
	pushGOP(f, 7_000_000, 3, 100, at)

	old, _ := videoFrames(drainAll(f))
	if len(old) != 5 || old[0] != 90000 || old[4] != 90000+4*3600 {
		t.Fatalf("the old publish got frames %v, want the main stream's 5 from 90000 on", old)
	}
	f.restartSink(at.Add(300*time.Millisecond), time.Time{}) // the new publish is up
	next, withSPS := videoFrames(drainAll(f))
	if len(next) != 3 || !withSPS {
		t.Fatalf("the new publish got frames %v (SPS first: %v), want the substream's 3 from its keyframe", next,
			withSPS)
	}
	if step := int32(next[0] - old[4]); step <= 0 || step > 2*3600 {
		t.Errorf("the new publish starts %d ticks after the old one's last frame, want one frame (3600)", step)
	}
	if d := f.dropped.Load(); d != 0 {
		t.Errorf("%d frames dropped", d)
	}
}
