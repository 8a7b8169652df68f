package onvif

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Subscription is a PullPoint subscription created on a device.
type Subscription struct {
	Address         string // the subscription manager / pull point URL (host fixed up)
	CurrentTime     time.Time
	TerminationTime time.Time
}

// Notification is one event message.
type Notification struct {
	Topic     string            // e.g. "tns1:VideoSource/MotionAlarm", whitespace trimmed
	Time      time.Time         // the message's UtcTime, zero when absent or unparsable
	Operation string            // PropertyOperation: Initialized, Changed, Deleted
	Source    map[string]string // SimpleItems of Source, e.g. VideoSourceConfigurationToken
	Data      map[string]string // SimpleItems of Data, e.g. State, IsMotion
}

// Motion reports whether the notification is a motion alarm and, if so, whether motion is on.
// It knows tns1:VideoSource/MotionAlarm (State) and tns1:RuleEngine/CellMotionDetector/Motion
// (IsMotion; some firmwares say Value).
func (n Notification) Motion() (active, ok bool) {
	topic := stripTopicPrefixes(n.Topic)
	switch {
	case strings.HasSuffix(topic, "VideoSource/MotionAlarm"):
		return parseBoolItem(n.Data, "State", "IsMotion", "Value")
	case strings.HasSuffix(topic, "CellMotionDetector/Motion"), strings.HasSuffix(topic, "MotionDetector/Motion"):
		return parseBoolItem(n.Data, "IsMotion", "State", "Value")
	}
	return false, false
}

func parseBoolItem(data map[string]string, names ...string) (bool, bool) {
	for _, name := range names {
		if v, ok := data[name]; ok {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "true", "1":
				return true, true
			case "false", "0":
				return false, true
			}
		}
	}
	return false, false
}

// stripTopicPrefixes turns "tns1:RuleEngine/tns1:CellMotionDetector/Motion" into
// "RuleEngine/CellMotionDetector/Motion".
func stripTopicPrefixes(t string) string {
	parts := strings.Split(strings.TrimSpace(t), "/")
	for i, p := range parts {
		parts[i] = localPart(p)
	}
	return strings.Join(parts, "/")
}

func (c *Client) eventsAddr() string { return c.service(func(s Services) string { return s.Events }) }

// CreatePullPointSubscription subscribes to all events; lifetime is the initial termination time.
func (c *Client) CreatePullPointSubscription(ctx context.Context, lifetime time.Duration) (*Subscription, error) {
	body := `<tev:CreatePullPointSubscription><tev:InitialTerminationTime>` + xsDuration(lifetime) +
		`</tev:InitialTerminationTime></tev:CreatePullPointSubscription>`
	to := c.eventsAddr()
	res, err := c.call(ctx, to, nsEvents, "CreatePullPointSubscription", body,
		withAction(nsEvents+"/EventPortType/CreatePullPointSubscriptionRequest"),
		withHeader(addressingHeader(nsEvents+"/EventPortType/CreatePullPointSubscriptionRequest", to)))
	if err != nil {
		return nil, err
	}
	addr := res.path("SubscriptionReference", "Address").text()
	if addr == "" {
		return nil, fmt.Errorf("onvif %s: CreatePullPointSubscription: answer has no SubscriptionReference", c.xaddr)
	}
	return &Subscription{
		Address:         c.fixServiceURL(addr),
		CurrentTime:     parseTime(res.child("CurrentTime").text()),
		TerminationTime: parseTime(res.child("TerminationTime").text()),
	}, nil
}

// PullMessages waits up to timeout for at most limit messages on a subscription.
func (c *Client) PullMessages(
	ctx context.Context, sub *Subscription, timeout time.Duration, limit int,
) ([]Notification, error) {
	if limit <= 0 {
		limit = 100
	}
	action := nsEvents + "/PullPointSubscription/PullMessagesRequest"
	body := `<tev:PullMessages><tev:Timeout>` + xsDuration(timeout) + `</tev:Timeout><tev:MessageLimit>` +
		strconv.Itoa(limit) + `</tev:MessageLimit></tev:PullMessages>`
	res, err := c.call(ctx, sub.Address, nsEvents, "PullMessages", body,
		withAction(action), withHeader(addressingHeader(action, sub.Address)), withExtraTime(timeout))
	if err != nil {
		return nil, err
	}
	if t := parseTime(res.child("TerminationTime").text()); !t.IsZero() {
		sub.TerminationTime = t
	}
	return parseNotifications(res), nil
}

// Renew extends a subscription by lifetime and returns the new termination time (zero if the
// device did not say).
func (c *Client) Renew(ctx context.Context, sub *Subscription, lifetime time.Duration) (time.Time, error) {
	action := "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest"
	body := `<wsnt:Renew><wsnt:TerminationTime>` + xsDuration(lifetime) + `</wsnt:TerminationTime></wsnt:Renew>`
	res, err := c.call(ctx, sub.Address, nsEvents, "Renew", body,
		withAction(action), withHeader(addressingHeader(action, sub.Address)))
	if err != nil {
		return time.Time{}, err
	}
	t := parseTime(res.child("TerminationTime").text())
	if !t.IsZero() {
		sub.TerminationTime = t
	}
	return t, nil
}

func addressingHeader(action, to string) string {
	return `<wsa:Action>` + xmlEscape(action) + `</wsa:Action><wsa:MessageID>urn:uuid:` + newUUID() +
		`</wsa:MessageID><wsa:To>` + xmlEscape(to) + `</wsa:To>`
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// ParseNotifications reads the notification messages of a PullMessages answer or a Notify
// request (a whole SOAP envelope).
func ParseNotifications(data []byte) ([]Notification, error) {
	body, err := parseEnvelope(data)
	if err != nil {
		return nil, fmt.Errorf("onvif: notifications: %w", err)
	}
	if f := faultOf(body); f != nil {
		f.Action = "PullMessages"
		return nil, f
	}
	return parseNotifications(body), nil
}

func parseNotifications(res *element) []Notification {
	var out []Notification
	for _, nm := range res.findAll("NotificationMessage") {
		n := Notification{Topic: strings.TrimSpace(nm.child("Topic").text())}
		msg := nm.path("Message", "Message")
		if msg == nil {
			msg = nm.child("Message").find("Message")
		}
		if msg != nil {
			n.Time = parseTime(msg.attr("UtcTime"))
			n.Operation = msg.attr("PropertyOperation")
			n.Source = simpleItems(msg.child("Source"))
			n.Data = simpleItems(msg.child("Data"))
		}
		out = append(out, n)
	}
	return out
}

func simpleItems(e *element) map[string]string {
	items := e.all("SimpleItem")
	if len(items) == 0 {
		return nil
	}
	m := make(map[string]string, len(items))
	for _, it := range items {
		m[it.attr("Name")] = it.attr("Value")
	}
	return m
}
