package uplink

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// authority is a test CA that issues certificates into files.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	file string
}

func newAuthority(t *testing.T, dir, name string) *authority {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	a := &authority{cert: cert, key: key, file: filepath.Join(dir, name+".pem")}
	writePEM(t, a.file, "CERTIFICATE", der)
	return a
}

// issue writes name.pem and name.key, a leaf for 127.0.0.1 usable by servers and clients.
func (a *authority) issue(t *testing.T, dir, name string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "EC PRIVATE KEY", kder)
	return certFile, keyFile
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestMQTTS(t *testing.T) {
	dir := t.TempDir()
	// mosquitto started as root reads its files as the mosquitto user.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ca := newAuthority(t, dir, "ca")
	other := newAuthority(t, dir, "other-ca")
	serverCert, serverKey := ca.issue(t, dir, "server", 2)
	clientCert, clientKey := ca.issue(t, dir, "client", 3)
	b := startBroker(t, fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\n",
		ca.file, serverCert, serverKey))
	tlsArgs := []string{"--cafile", ca.file, "--cert", clientCert, "--key", clientKey}
	url := "mqtts://" + b.addr()

	t.Run("trusted CA and client certificate", func(t *testing.T) {
		sub := subscribe(t, b, tlsArgs, prefix+"/status")
		m := newTestMQTT(t, url, newMemQueue(), func(c *MQTTConfig) {
			c.CAFile, c.CertFile, c.KeyFile = ca.file, clientCert, clientKey
		})
		runMQTT(t, m)
		eventually(t, "online over TLS", 20*time.Second, func() bool {
			st := statuses(t, sub)
			return len(st) > 0 && st[len(st)-1].State == "online"
		})
	})

	tests := []struct {
		name string
		edit func(*MQTTConfig)
		want string
	}{
		{"wrong CA", func(c *MQTTConfig) { c.CAFile, c.CertFile, c.KeyFile = other.file, clientCert, clientKey },
			"mqtt: tls: x509: certificate signed by unknown authority"},
		{"no client certificate", func(c *MQTTConfig) { c.CAFile = ca.file }, "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMQTT(t, url, newMemQueue(), tt.edit)
			runMQTT(t, m)
			eventually(t, "a connection error", 20*time.Second, func() bool { return m.LastError() != "" })
			if got := m.LastError(); !strings.HasPrefix(got, "mqtt: ") || !strings.Contains(got, tt.want) {
				t.Errorf("LastError() = %q, want mqtt: ...%s...", got, tt.want)
			}
			if m.Connected() {
				t.Error("Connected() = true")
			}
		})
	}
}
