package quality

// hashSet is a set of 64-bit hashes in one open-addressing table: 8 bytes a
// slot, at most 3/4 full. A Go map of uint64 takes 24 to 36 bytes an entry.
type hashSet struct {
	slots []uint64
	n     int
}

// add adds h and reports whether it was new.
func (s *hashSet) add(h uint64) bool {
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	return s.insert(h)
}

func (s *hashSet) contains(h uint64) bool {
	if len(s.slots) == 0 {
		return false
	}
	h = nonZero(h)
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			return false
		case h:
			return true
		}
	}
}

func (s *hashSet) insert(h uint64) bool {
	h = nonZero(h)
	mask := uint64(len(s.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			s.slots[i] = h
			s.n++
			return true
		case h:
			return false
		}
	}
}

func (s *hashSet) grow() {
	old := s.slots
	s.slots, s.n = make([]uint64, max(1024, 2*len(old))), 0
	for _, h := range old {
		if h != 0 {
			s.insert(h)
		}
	}
}

// nonZero maps the hash 0, which marks an empty slot, to 1.
func nonZero(h uint64) uint64 {
	if h == 0 {
		return 1
	}
	return h
}
