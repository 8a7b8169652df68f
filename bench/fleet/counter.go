package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

const counterID = "fleet-counter"

// counter is the one subscriber that receives everything the gateways publish, as Eltex SC's
// backend does. It keeps a persistent session (clean session off, QoS 1), so the broker queues
// for it while it reconnects after a restart and it misses nothing a gateway delivered.
// It also reads mosquitto's own $SYS counters.
type counter struct {
	c paho.Client

	mu        sync.Mutex
	msgs      int64
	bytes     int64 // topic + payload
	perSecond map[int64]int
	events    map[string]int // event_id -> times received
	sys       map[string]float64
}

func newCounter(addr string) (*counter, error) {
	k := &counter{perSecond: map[int64]int{}, events: map[string]int{}, sys: map[string]float64{}}
	// Subscribe once: the session, kept by the broker across its restarts, holds the
	// subscriptions, and subscribing again would make the broker send every retained message anew.
	var once sync.Once
	subscribe := func(c paho.Client) {
		once.Do(func() {
			c.Subscribe("camgate/#", 1, k.onMessage)
			c.Subscribe("$SYS/broker/#", 0, k.onSys)
		})
	}
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(counterID).
		SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(50 * time.Millisecond).SetMaxReconnectInterval(100 * time.Millisecond).
		SetOrderMatters(false).SetKeepAlive(30 * time.Second).SetOnConnectHandler(subscribe)
	k.c = paho.NewClient(opts)
	t := k.c.Connect()
	if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return nil, fmt.Errorf("counting subscriber: connect: %w", t.Error())
	}
	return k, nil
}

// eventID is what names an event at the broker: the gateway (its server field) and its
// integer event_id.
type eventID struct {
	EventID int64  `json:"event_id"`
	Server  string `json:"server"`
}

func (k *counter) onMessage(_ paho.Client, m paho.Message) {
	now := time.Now().Unix()
	var ev eventID
	if strings.HasSuffix(m.Topic(), "/events") {
		_ = json.Unmarshal(m.Payload(), &ev)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.msgs++
	k.bytes += int64(len(m.Topic()) + len(m.Payload()))
	k.perSecond[now]++
	if ev.EventID != 0 {
		k.events[eventIDOf(ev.Server, ev.EventID)]++
	}
}

func (k *counter) onSys(_ paho.Client, m paho.Message) {
	v, err := strconv.ParseFloat(strings.Fields(string(m.Payload()) + " x")[0], 64)
	if err != nil {
		return
	}
	k.mu.Lock()
	k.sys[strings.TrimPrefix(m.Topic(), "$SYS/broker/")] = v
	k.mu.Unlock()
}

// counts is one reading of everything counted so far.
type counts struct {
	msgs, bytes int64
	sys         map[string]float64
}

func (k *counter) read() counts {
	k.mu.Lock()
	defer k.mu.Unlock()
	s := make(map[string]float64, len(k.sys))
	for key, v := range k.sys {
		s[key] = v
	}
	return counts{msgs: k.msgs, bytes: k.bytes, sys: s}
}

// eventStats checks the events numbered 1..queued[gateway] of each gateway: how many never
// arrived, and how many arrived more than once (at least once allows it; event_id is for that).
func (k *counter) eventStats(queued map[string]int64) (missing, duplicates int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for gw, n := range queued {
		for i := int64(1); i <= n; i++ {
			switch got := k.events[eventIDOf(gw, i)]; {
			case got == 0:
				missing++
			case got > 1:
				duplicates += int64(got - 1)
			}
		}
	}
	return missing, duplicates
}

func (k *counter) close() { k.c.Disconnect(250) }

// retained reads the broker's whole retained store once, with a fresh clean-session client, and
// returns how many retained messages there are and their topic + payload bytes.
func retained(addr string) (n int, bytes int64, err error) {
	var mu sync.Mutex
	last := time.Now()
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("fleet-retained").SetCleanSession(true).
		SetOrderMatters(false)
	c := paho.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return 0, 0, fmt.Errorf("retained reader: connect: %w", t.Error())
	}
	defer c.Disconnect(250)
	// QoS 1, so that the broker queues what the socket cannot take yet instead of dropping it.
	t := c.Subscribe("camgate/#", 1, func(_ paho.Client, m paho.Message) {
		if !m.Retained() {
			return
		}
		mu.Lock()
		n++
		bytes += int64(len(m.Topic()) + len(m.Payload()))
		last = time.Now()
		mu.Unlock()
	})
	if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
		return 0, 0, fmt.Errorf("retained reader: subscribe: %w", t.Error())
	}
	// The broker sends the retained store right after SUBACK; five quiet seconds mean it is done.
	for {
		time.Sleep(500 * time.Millisecond)
		mu.Lock()
		quiet := time.Since(last) > 5*time.Second
		mu.Unlock()
		if quiet {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return n, bytes, nil
}
