package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// AMF0 (Action Message Format 0) is how RTMP commands carry their arguments. Only the types
// that publishers and servers exchange during connect and publish are supported.

// AMF0 type markers.
const (
	amfNumber      = 0x00
	amfBoolean     = 0x01
	amfString      = 0x02
	amfObject      = 0x03
	amfNull        = 0x05
	amfUndefined   = 0x06
	amfECMAArray   = 0x08
	amfObjectEnd   = 0x09
	amfStrictArray = 0x0a
	amfDate        = 0x0b
	amfLongString  = 0x0c
)

// Bounds on what a server may make the decoder hold: commands are a few hundred bytes.
const (
	amfMaxDepth   = 8
	amfMaxEntries = 256
)

// amfProp is one key/value pair of an AMF0 object or ECMA array; order is kept because some
// servers read connect's properties in the order they arrive.
type amfProp struct {
	Key   string
	Value any
}

// amfObj is an AMF0 anonymous object. Values are float64, bool, string, nil, amfObj,
// amfECMA or []any.
type amfObj []amfProp

// amfECMA is an AMF0 ECMA array (an object with a count), what onMetaData carries.
type amfECMA []amfProp

// get returns the value of key, or nil.
func (o amfObj) get(key string) any {
	for _, p := range o {
		if p.Key == key {
			return p.Value
		}
	}
	return nil
}

// str returns the string value of key, or "".
func (o amfObj) str(key string) string {
	s, _ := o.get(key).(string)
	return s
}

// appendAMF appends the AMF0 encoding of v. It panics on a type it does not know: values are
// built by this package, never taken from the network.
func appendAMF(b []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(b, amfNull)
	case float64:
		b = append(b, amfNumber)
		return binary.BigEndian.AppendUint64(b, math.Float64bits(v))
	case int:
		return appendAMF(b, float64(v))
	case bool:
		if v {
			return append(b, amfBoolean, 1)
		}
		return append(b, amfBoolean, 0)
	case string:
		if len(v) > math.MaxUint16 {
			b = append(b, amfLongString)
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			return append(b, v...)
		}
		b = append(b, amfString)
		return appendAMFKey(b, v)
	case amfObj:
		b = append(b, amfObject)
		return appendAMFProps(b, v)
	case amfECMA:
		b = append(b, amfECMAArray)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		return appendAMFProps(b, v)
	case []any:
		b = append(b, amfStrictArray)
		b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
		for _, e := range v {
			b = appendAMF(b, e)
		}
		return b
	default:
		panic(fmt.Sprintf("rtsp: no AMF0 encoding for %T", v))
	}
}

func appendAMFKey(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendAMFProps(b []byte, props []amfProp) []byte {
	for _, p := range props {
		b = appendAMFKey(b, p.Key)
		b = appendAMF(b, p.Value)
	}
	return append(b, 0, 0, amfObjectEnd)
}

var errAMFShort = errors.New("AMF0: truncated")

// decodeAMF decodes all values in b, as a command or data message body holds them.
func decodeAMF(b []byte) ([]any, error) {
	var vals []any
	for len(b) > 0 {
		if len(vals) >= amfMaxEntries {
			return nil, errors.New("AMF0: too many values")
		}
		v, rest, err := decodeAMFValue(b, 0)
		if err != nil {
			return nil, err
		}
		vals = append(vals, v)
		b = rest
	}
	return vals, nil
}

func decodeAMFValue(b []byte, depth int) (any, []byte, error) {
	if len(b) == 0 {
		return nil, nil, errAMFShort
	}
	if depth > amfMaxDepth {
		return nil, nil, errors.New("AMF0: nested too deep")
	}
	marker, b := b[0], b[1:]
	switch marker {
	case amfNumber:
		if len(b) < 8 {
			return nil, nil, errAMFShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[8:], nil
	case amfBoolean:
		if len(b) < 1 {
			return nil, nil, errAMFShort
		}
		return b[0] != 0, b[1:], nil
	case amfString:
		return decodeAMFKey(b)
	case amfLongString:
		if len(b) < 4 {
			return nil, nil, errAMFShort
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(n) > uint64(len(b)-4) {
			return nil, nil, errAMFShort
		}
		return string(b[4 : 4+n]), b[4+n:], nil
	case amfNull, amfUndefined:
		return nil, b, nil
	case amfObject:
		props, rest, err := decodeAMFProps(b, depth)
		return amfObj(props), rest, err
	case amfECMAArray:
		if len(b) < 4 {
			return nil, nil, errAMFShort
		}
		// The count is advisory; the end marker is what ends the array.
		props, rest, err := decodeAMFProps(b[4:], depth)
		return amfObj(props), rest, err
	case amfStrictArray:
		if len(b) < 4 {
			return nil, nil, errAMFShort
		}
		n := binary.BigEndian.Uint32(b)
		if n > amfMaxEntries {
			return nil, nil, errors.New("AMF0: array too long")
		}
		b = b[4:]
		arr := make([]any, 0, n)
		for range n {
			v, rest, err := decodeAMFValue(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			arr = append(arr, v)
			b = rest
		}
		return arr, b, nil
	case amfDate:
		if len(b) < 10 {
			return nil, nil, errAMFShort
		}
		return math.Float64frombits(binary.BigEndian.Uint64(b)), b[10:], nil
	default:
		return nil, nil, fmt.Errorf("AMF0: unsupported type 0x%02x", marker)
	}
}

func decodeAMFKey(b []byte) (string, []byte, error) {
	if len(b) < 2 {
		return "", nil, errAMFShort
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return "", nil, errAMFShort
	}
	return string(b[2 : 2+n]), b[2+n:], nil
}

func decodeAMFProps(b []byte, depth int) ([]amfProp, []byte, error) {
	var props []amfProp
	for {
		if len(b) >= 3 && b[0] == 0 && b[1] == 0 && b[2] == amfObjectEnd {
			return props, b[3:], nil
		}
		if len(props) >= amfMaxEntries {
			return nil, nil, errors.New("AMF0: object too large")
		}
		key, rest, err := decodeAMFKey(b)
		if err != nil {
			return nil, nil, err
		}
		v, rest, err := decodeAMFValue(rest, depth+1)
		if err != nil {
			return nil, nil, err
		}
		props = append(props, amfProp{key, v})
		b = rest
	}
}
