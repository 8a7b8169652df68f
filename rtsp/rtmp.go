package rtsp

import (
	"context"
	"errors"
	"net/url"
)

func (r *Relay) runRTMPSink(ctx context.Context, u *url.URL, tracks *trackSet, changed <-chan struct{}) error {
	return errors.New("RTMP publishing is not implemented yet")
}
