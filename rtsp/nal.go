package rtsp

// NAL unit types this package looks at. Only the RTP payload headers are scanned, never the
// bitstream, so the cost per packet is a few byte reads.
const (
	h264NALIDR   = 5
	h264NALSPS   = 7
	h264NALPPS   = 8
	h264STAPA    = 24
	h264FUA      = 28
	h265NALVPS   = 32
	h265NALSPS   = 33
	h265NALPPS   = 34
	h265AP       = 48
	h265FU       = 49
	h265IRAPLow  = 16
	h265IRAPHigh = 21
)

// videoCodec says how to read the RTP payload of the video track.
type videoCodec uint8

const (
	codecH264 videoCodec = iota + 1
	codecH265
)

// nalVisitor is called for each NAL unit (or the first fragment of one) found at the start of
// an RTP payload. nal holds the complete unit for single and aggregated packets and nil for a
// fragment, whose type is still reported.
type nalVisitor func(typ uint8, nal []byte)

// scanNALs calls visit for every NAL unit an RTP payload of the given codec carries or starts.
// Malformed payloads end the scan silently: a bad camera must not crash the relay, and the
// receiver gets exactly the bytes the camera sent.
func scanNALs(codec videoCodec, payload []byte, visit nalVisitor) {
	switch codec {
	case codecH264:
		scanH264(payload, visit)
	case codecH265:
		scanH265(payload, visit)
	}
}

func scanH264(p []byte, visit nalVisitor) {
	if len(p) < 1 {
		return
	}
	typ := p[0] & 0x1f
	switch {
	case typ >= 1 && typ <= 23:
		visit(typ, p)
	case typ == h264STAPA:
		p = p[1:]
		for len(p) >= 2 {
			size := int(p[0])<<8 | int(p[1])
			p = p[2:]
			if size == 0 || size > len(p) {
				return
			}
			visit(p[0]&0x1f, p[:size])
			p = p[size:]
		}
	case typ == h264FUA:
		if len(p) < 2 || p[1]&0x80 == 0 {
			return
		}
		visit(p[1]&0x1f, nil)
	}
}

func scanH265(p []byte, visit nalVisitor) {
	if len(p) < 2 {
		return
	}
	typ := (p[0] >> 1) & 0x3f
	switch {
	case typ < h265AP:
		visit(typ, p)
	case typ == h265AP:
		p = p[2:]
		for len(p) >= 2 {
			size := int(p[0])<<8 | int(p[1])
			p = p[2:]
			if size < 2 || size > len(p) {
				return
			}
			visit((p[0]>>1)&0x3f, p[:size])
			p = p[size:]
		}
	case typ == h265FU:
		if len(p) < 3 || p[2]&0x80 == 0 {
			return
		}
		visit(p[2]&0x3f, nil)
	}
}

// isKeyframeNAL reports whether a NAL unit type starts a picture a decoder can begin with.
func isKeyframeNAL(codec videoCodec, typ uint8) bool {
	switch codec {
	case codecH264:
		return typ == h264NALIDR
	case codecH265:
		return typ >= h265IRAPLow && typ <= h265IRAPHigh
	}
	return false
}

// paramSetIndex maps a parameter set NAL type to its slot in paramSets (VPS, SPS, PPS), or -1.
func paramSetIndex(codec videoCodec, typ uint8) int {
	switch codec {
	case codecH264:
		switch typ {
		case h264NALSPS:
			return 1
		case h264NALPPS:
			return 2
		}
	case codecH265:
		switch typ {
		case h265NALVPS:
			return 0
		case h265NALSPS:
			return 1
		case h265NALPPS:
			return 2
		}
	}
	return -1
}
