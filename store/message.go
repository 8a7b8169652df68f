package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Class says how a message is treated when the outbox is full.
type Class uint8

const (
	ClassTelemetry    Class = 1 // dropped first when the outbox is full
	ClassEvent        Class = 2 // then the oldest events
	ClassRegistration Class = 3 // never dropped
)

func (c Class) String() string {
	switch c {
	case ClassTelemetry:
		return "telemetry"
	case ClassEvent:
		return "event"
	case ClassRegistration:
		return "registration"
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

func (c Class) valid() bool { return c >= ClassTelemetry && c <= ClassRegistration }

// Message is one queued item for one destination.
type Message struct {
	Seq    uint64 // assigned by Enqueue, strictly increasing within a queue
	Class  Class
	Topic  string // destination-specific address (MQTT topic); may be empty
	Retain bool   // MQTT retain flag; ignored by other destinations
	// Latest puts the message in the keep-latest class: enqueuing it replaces, on disk and in
	// the queue, any queued Latest message of the same queue and Topic. For retained topics
	// (snapshots, state) whose receiver only ever keeps the newest.
	Latest  bool
	Payload []byte
	// PayloadFile, if set, names a file that holds exactly Payload and that its owner replaces
	// only by rename, never rewrites in place. For a payload kept in a file (filePayloadMin),
	// Enqueue then links that file instead of writing a copy: an alarm JPEG that the agent
	// keeps on disk anyway is written to flash once. It is not stored.
	PayloadFile string
	Enqueued    time.Time // set by Enqueue

	file payloadRef // set while the payload is in a file of its own (filePayloadMin) and not yet read
}

// messageOverhead is what a message costs on top of topic and payload in the outbox bound: the
// 8-byte key, the record header and bbolt's per-element page header, rounded up so that a flood of
// empty messages is bounded too.
const messageOverhead = 64

// size is a message's cost against Options.OutboxMaxBytes.
func (m *Message) size() int64 {
	payload := int64(len(m.Payload))
	if m.file.name != "" {
		payload = m.file.size
	}
	return payload + int64(len(m.Topic)) + messageOverhead
}

// Record layout (value under the 8-byte big-endian seq key):
//
//	[0]      format, 1
//	[1]      class
//	[2]      flags: bit 0 = retain, bit 1 = keep-latest, bit 2 = payload in a file
//	[3:11]   enqueued, Unix nanoseconds, big-endian
//	uvarint  topic length, then topic, then payload to the end
//
// With bit 2 (schema 2), what follows the topic is the payload file's reference, to the end:
//
//	uvarint  payload size
//	[4]      CRC-32C of the payload, big-endian
//	[32]     file name, lowercase hex
const (
	recordFormat    = 1
	recordHeaderLen = 11
	flagRetain      = 1
	flagLatest      = 2
	flagFile        = 4
	maxTopicLen     = 64 << 10 // MQTT's own limit; anything longer is a caller bug
	maxPayloadSize  = 1 << 40  // far above any outbox bound: a larger claimed size is damage
)

var errBadRecord = errors.New("malformed outbox record")

func encodeRecord(m *Message) []byte {
	buf := make([]byte, recordHeaderLen, recordHeaderLen+binary.MaxVarintLen64+len(m.Topic)+len(m.Payload))
	buf[0] = recordFormat
	buf[1] = byte(m.Class)
	if m.Retain {
		buf[2] |= flagRetain
	}
	if m.Latest {
		buf[2] |= flagLatest
	}
	if m.file.name != "" {
		buf[2] |= flagFile
	}
	binary.BigEndian.PutUint64(buf[3:], uint64(m.Enqueued.UnixNano()))
	buf = binary.AppendUvarint(buf, uint64(len(m.Topic)))
	buf = append(buf, m.Topic...)
	if m.file.name != "" {
		buf = binary.AppendUvarint(buf, uint64(m.file.size))
		buf = binary.BigEndian.AppendUint32(buf, m.file.crc)
		return append(buf, m.file.name...)
	}
	return append(buf, m.Payload...)
}

// decodeRecord parses a stored record. The payload aliases rec: callers outside the transaction
// must copy it.
func decodeRecord(seq uint64, rec []byte) (Message, error) {
	if len(rec) < recordHeaderLen+1 {
		return Message{}, fmt.Errorf("%w: %d bytes", errBadRecord, len(rec))
	}
	if rec[0] != recordFormat {
		return Message{}, fmt.Errorf("%w: format %d", errBadRecord, rec[0])
	}
	c := Class(rec[1])
	if !c.valid() {
		return Message{}, fmt.Errorf("%w: class %d", errBadRecord, rec[1])
	}
	if rec[2]&^(flagRetain|flagLatest|flagFile) != 0 {
		return Message{}, fmt.Errorf("%w: flags %#x", errBadRecord, rec[2])
	}
	n, w := binary.Uvarint(rec[recordHeaderLen:])
	if w <= 0 || n > maxTopicLen {
		return Message{}, fmt.Errorf("%w: topic length", errBadRecord)
	}
	rest := rec[recordHeaderLen+w:]
	if uint64(len(rest)) < n {
		return Message{}, fmt.Errorf("%w: topic length %d over %d bytes left", errBadRecord, n, len(rest))
	}
	m := Message{
		Seq:      seq,
		Class:    c,
		Topic:    string(rest[:n]),
		Retain:   rec[2]&flagRetain != 0,
		Latest:   rec[2]&flagLatest != 0,
		Payload:  rest[n:],
		Enqueued: time.Unix(0, int64(binary.BigEndian.Uint64(rec[3:]))),
	}
	if rec[2]&flagFile != 0 {
		ref, err := decodePayloadRef(m.Payload)
		if err != nil {
			return Message{}, err
		}
		m.Payload, m.file = nil, ref
	}
	return m, nil
}

// decodePayloadRef parses what a record with flagFile holds after its topic.
func decodePayloadRef(b []byte) (payloadRef, error) {
	size, w := binary.Uvarint(b)
	if w <= 0 || size > maxPayloadSize {
		return payloadRef{}, fmt.Errorf("%w: payload file size", errBadRecord)
	}
	b = b[w:]
	if len(b) != 4+payloadNameLen || !validPayloadName(string(b[4:])) {
		return payloadRef{}, fmt.Errorf("%w: payload file reference of %d bytes", errBadRecord, len(b))
	}
	return payloadRef{name: string(b[4:]), size: int64(size), crc: binary.BigEndian.Uint32(b)}, nil
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}
