package rtsp

// reorderSize is how many packets a UDP track holds back waiting for one that is missing,
// as gortsplib's client did over UDP (rtpreceiver's BufferSize). A power of two: slots are
// indexed by the sequence number's low bits.
const reorderSize = 64

// reorderer puts a UDP track's RTP packets back in sequence order and drops duplicates, as
// gortsplib's client did before udpSession replaced it: datagrams may arrive out of order or
// twice, the relay's depacketizing expects neither. A packet after a gap waits until the gap
// is filled or reorderSize packets later, when what is held goes on in order and the gap is
// given up; more than reorderSize old packets in a row are a restarted stream, taken as it
// comes. Its slots (reorderSize packets of udpMaxPacket) are allocated only when a packet
// first arrives out of order. It is used from the track's reading goroutine only.
type reorderer struct {
	started  bool
	last     uint16 // the sequence number delivered last
	negative int    // old packets in a row
	slots    []reorderSlot
}

type reorderSlot struct {
	held bool
	seq  uint16
	b    []byte
}

// push takes packet b with sequence number seq and calls deliver with each packet that is now
// in order: b itself, or (held true) a copy of one that came early, valid during the call.
func (r *reorderer) push(b []byte, seq uint16, deliver func(b []byte, held bool)) {
	if !r.started {
		r.started, r.last = true, seq
		deliver(b, false)
		return
	}
	switch rel := int16(seq - r.last - 1); {
	case rel < 0: // a duplicate, or older than what went on already
		r.negative++
		if r.negative > reorderSize {
			r.negative = 0
			r.clear()
			r.last = seq
			deliver(b, false)
		}
	case rel >= reorderSize: // the gap will not be filled in time: give it up
		r.negative = 0
		for i := uint16(1); i <= reorderSize; i++ { // what may be held: last+2 to last+reorderSize
			r.deliverHeld(r.last+i, deliver)
		}
		r.last = seq
		deliver(b, false)
	case rel > 0: // early: hold it until the gap before it is filled
		r.negative = 0
		r.hold(b, seq)
	default: // the next one: it and whatever it completes go on
		r.negative = 0
		r.last = seq
		deliver(b, false)
		for r.deliverHeld(r.last+1, deliver) {
			r.last++
		}
	}
}

func (r *reorderer) hold(b []byte, seq uint16) {
	if r.slots == nil {
		r.slots = make([]reorderSlot, reorderSize)
		mem := make([]byte, reorderSize*udpMaxPacket)
		for i := range r.slots {
			r.slots[i].b = mem[i*udpMaxPacket : i*udpMaxPacket : (i+1)*udpMaxPacket]
		}
	}
	s := &r.slots[seq%reorderSize]
	if s.held {
		return // the same packet twice
	}
	s.held, s.seq, s.b = true, seq, append(s.b[:0], b...)
}

// deliverHeld delivers the packet held for seq, if there is one, and says whether there was.
func (r *reorderer) deliverHeld(seq uint16, deliver func([]byte, bool)) bool {
	if r.slots == nil {
		return false
	}
	s := &r.slots[seq%reorderSize]
	if !s.held || s.seq != seq {
		return false
	}
	s.held = false
	deliver(s.b, true)
	return true
}

func (r *reorderer) clear() {
	for i := range r.slots {
		r.slots[i].held = false
	}
}
