package onvif

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DeviceInfo is the answer of GetDeviceInformation.
type DeviceInfo struct {
	Manufacturer string
	Model        string
	Firmware     string
	Serial       string
	HardwareID   string
}

// Services holds the XAddrs of the services camgate uses; empty when the device has none.
type Services struct {
	Media   string
	Media2  string
	PTZ     string
	Events  string
	Imaging string
}

// NetworkInterface is one entry of GetNetworkInterfaces.
type NetworkInterface struct {
	Token   string
	Name    string
	MAC     string // lower case, colon separated
	Enabled bool
}

// GetSystemDateAndTime asks the device for its UTC clock, without credentials.
func (c *Client) GetSystemDateAndTime(ctx context.Context) (time.Time, error) {
	res, err := c.call(ctx, c.xaddr, nsDevice, "GetSystemDateAndTime", `<tds:GetSystemDateAndTime/>`, anonymous())
	if err != nil {
		return time.Time{}, err
	}
	t, err := parseSystemDateAndTime(res)
	if err != nil {
		return time.Time{}, fmt.Errorf("onvif %s: GetSystemDateAndTime: %w", c.xaddr, err)
	}
	return t, nil
}

func parseSystemDateAndTime(res *element) (time.Time, error) {
	sdt := res.find("SystemDateAndTime")
	if sdt == nil {
		sdt = res
	}
	dt := sdt.child("UTCDateTime")
	loc := time.UTC
	if dt == nil {
		// Some cameras only fill LocalDateTime; without a parsable zone it is the best there is.
		dt = sdt.child("LocalDateTime")
	}
	if dt == nil {
		return time.Time{}, errors.New("no UTCDateTime in answer")
	}
	num := func(parent, name string) (int, error) {
		v := dt.path(parent, name).text()
		n, err := strconv.Atoi(v)
		if err != nil {
			return 0, fmt.Errorf("%s/%s %q: not a number", parent, name, v)
		}
		return n, nil
	}
	var vals [6]int
	for i, f := range [][2]string{{"Date", "Year"}, {"Date", "Month"}, {"Date", "Day"}, {"Time", "Hour"},
		{"Time", "Minute"}, {"Time", "Second"}} {
		n, err := num(f[0], f[1])
		if err != nil {
			return time.Time{}, err
		}
		vals[i] = n
	}
	if vals[0] < 1970 || vals[0] > 9999 || vals[1] < 1 || vals[1] > 12 || vals[2] < 1 || vals[2] > 31 {
		return time.Time{}, fmt.Errorf("implausible date %04d-%02d-%02d", vals[0], vals[1], vals[2])
	}
	return time.Date(vals[0], time.Month(vals[1]), vals[2], vals[3], vals[4], vals[5], 0, loc), nil
}

// SyncClock measures the device clock's offset from ours and keeps it for WS-Security tokens.
func (c *Client) SyncClock(ctx context.Context) (time.Duration, error) {
	before := time.Now()
	t, err := c.GetSystemDateAndTime(ctx)
	if err != nil {
		return 0, err
	}
	after := time.Now()
	mid := before.Add(after.Sub(before) / 2)
	// The device answers in whole seconds: round so a correct clock gives offset 0.
	off := t.Sub(mid).Round(time.Second)
	c.mu.Lock()
	c.offset, c.synced = off, true
	c.mu.Unlock()
	return off, nil
}

// GetDeviceInformation returns manufacturer, model, firmware, serial and hardware id.
func (c *Client) GetDeviceInformation(ctx context.Context) (DeviceInfo, error) {
	res, err := c.call(ctx, c.xaddr, nsDevice, "GetDeviceInformation", `<tds:GetDeviceInformation/>`)
	if err != nil {
		return DeviceInfo{}, err
	}
	return DeviceInfo{
		Manufacturer: res.child("Manufacturer").text(),
		Model:        res.child("Model").text(),
		Firmware:     res.child("FirmwareVersion").text(),
		Serial:       res.child("SerialNumber").text(),
		HardwareID:   res.child("HardwareId").text(),
	}, nil
}

// GetServices lists the device's services (ONVIF 2.0+) and remembers their addresses.
func (c *Client) GetServices(ctx context.Context) (Services, error) {
	res, err := c.call(ctx, c.xaddr, nsDevice, "GetServices",
		`<tds:GetServices><tds:IncludeCapability>false</tds:IncludeCapability></tds:GetServices>`)
	if err != nil {
		return Services{}, err
	}
	var s Services
	for _, svc := range res.all("Service") {
		addr := c.fixServiceURL(svc.child("XAddr").text())
		switch strings.TrimSpace(svc.child("Namespace").text()) {
		case nsMedia:
			s.Media = addr
		case nsMedia2:
			s.Media2 = addr
		case nsPTZ:
			s.PTZ = addr
		case nsEvents:
			s.Events = addr
		case nsImaging:
			s.Imaging = addr
		}
	}
	c.setServices(s)
	return s, nil
}

// GetCapabilities is the ONVIF 1.x way to learn service addresses; it has no Media2.
func (c *Client) GetCapabilities(ctx context.Context) (Services, error) {
	res, err := c.call(ctx, c.xaddr, nsDevice, "GetCapabilities",
		`<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>`)
	if err != nil {
		return Services{}, err
	}
	caps := res.child("Capabilities")
	x := func(name string) string { return c.fixServiceURL(caps.path(name, "XAddr").text()) }
	s := Services{Media: x("Media"), PTZ: x("PTZ"), Events: x("Events"), Imaging: x("Imaging")}
	// Media2 hides in Extension on some firmwares.
	for _, m := range caps.findAll("Media2") {
		if a := m.child("XAddr").text(); a != "" {
			s.Media2 = c.fixServiceURL(a)
		}
	}
	c.setServices(s)
	return s, nil
}

func (c *Client) setServices(s Services) {
	c.mu.Lock()
	c.services = s
	c.mu.Unlock()
}

// Services returns the service addresses learned by GetServices or GetCapabilities.
func (c *Client) Services() Services {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.services
}

// service returns a service XAddr, or the device XAddr: many cameras serve all on one URL.
func (c *Client) service(pick func(Services) string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if a := pick(c.services); a != "" {
		return a
	}
	return c.xaddr
}

// GetNetworkInterfaces returns the device's interfaces with their MAC addresses.
func (c *Client) GetNetworkInterfaces(ctx context.Context) ([]NetworkInterface, error) {
	res, err := c.call(ctx, c.xaddr, nsDevice, "GetNetworkInterfaces", `<tds:GetNetworkInterfaces/>`)
	if err != nil {
		return nil, err
	}
	var out []NetworkInterface
	for _, ni := range res.all("NetworkInterfaces") {
		info := ni.child("Info")
		out = append(out, NetworkInterface{
			Token:   ni.attr("token"),
			Name:    info.child("Name").text(),
			MAC:     normalizeMAC(info.child("HwAddress").text()),
			Enabled: strings.EqualFold(ni.child("Enabled").text(), "true"),
		})
	}
	return out, nil
}

func normalizeMAC(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	if hw, err := net.ParseMAC(s); err == nil {
		return hw.String()
	}
	clean := strings.NewReplacer(":", "", "-", "", ".", "").Replace(s)
	if len(clean) == 12 {
		if hw, err := net.ParseMAC(strings.Join([]string{
			clean[0:2], clean[2:4], clean[4:6], clean[6:8], clean[8:10], clean[10:12],
		}, ":")); err == nil {
			return hw.String()
		}
	}
	return s
}

// fixServiceURL points a service XAddr at the host and port we reach the device on: cameras
// report 0.0.0.0, link-local or pre-NAT addresses, yet serve every service from the same
// HTTP server as the device service.
func (c *Client) fixServiceURL(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	u.Scheme = c.base.Scheme
	u.Host = c.base.Host
	return u.String()
}

// fixMediaURL replaces a stream or snapshot URI's host by the device's when it is unspecified,
// loopback or otherwise not the address we reach the device on. The port is kept (RTSP is on its
// own port); an http(s) URI without a port gets the device service's port, as it is usually
// the same web server.
func (c *Client) fixMediaURL(raw string) string {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	devHost := c.base.Hostname()
	if u.Hostname() == devHost {
		return raw
	}
	port := u.Port()
	if port == "" && (u.Scheme == "http" || u.Scheme == "https") && u.Scheme == c.base.Scheme {
		port = c.base.Port()
	}
	if port != "" {
		u.Host = net.JoinHostPort(devHost, port)
	} else if strings.Contains(devHost, ":") {
		u.Host = "[" + devHost + "]"
	} else {
		u.Host = devHost
	}
	return u.String()
}
