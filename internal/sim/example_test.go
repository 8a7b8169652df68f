package sim_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"

	"github.com/camgate/camgate/internal/sim"
)

// A demo world: one camera, the Flussonic stand-in and the event sink, until Ctrl-C.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cam, err := sim.NewCamera(sim.CameraConfig{Addr: "127.0.0.1:0", Path: "/stream1"})
	if err != nil {
		log.Fatal(err)
	}
	media, err := sim.NewMediaServer(sim.MediaServerConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	sink, err := sim.NewEventSink(sim.EventSinkConfig{Addr: "127.0.0.1:0", Out: os.Stdout})
	if err != nil {
		log.Fatal(err)
	}
	for _, run := range []func(context.Context) error{cam.Run, media.Run, sink.Run} {
		go func() {
			if err := run(ctx); err != nil {
				log.Print(err)
			}
		}()
	}
	fmt.Println("camera:", cam.URL())              // pull from here
	fmt.Println("publish to:", media.URL()+"cam1") // relay to here; ffplay it from here too
	fmt.Println("events to:", sink.URL())
	<-ctx.Done()
	st, _ := media.Stream("cam1")
	fmt.Println("frames relayed:", st.VideoFrames)
}
