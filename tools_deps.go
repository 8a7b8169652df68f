//go:build camgate_deps

// This file pins the dependencies chosen in DESIGN.md while the packages that use them are being
// written in parallel, so that go.mod does not churn under concurrent work. It is never built.
package camgate

import (
	_ "github.com/VictoriaMetrics/metrics"
	_ "github.com/bluenviron/gortmplib"
	_ "github.com/bluenviron/gortsplib/v5"
	_ "github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/emersion/go-message/charset"
	_ "github.com/emersion/go-sasl"
	_ "github.com/emersion/go-smtp"
	_ "github.com/google/uuid"
	_ "github.com/grandcat/zeroconf"
	_ "github.com/pion/rtp"
	_ "github.com/skip2/go-qrcode"
	_ "go.etcd.io/bbolt"
	_ "go.yaml.in/yaml/v3"
	_ "golang.org/x/net/ipv4"
	_ "golang.org/x/text/encoding/simplifiedchinese"
)
