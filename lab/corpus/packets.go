package corpus

import (
	"math/rand"
)

// Class names what a generated frame exercises: a well-formed layer stack or
// one structural mutation of one.
type Class string

// Expect is what docs/datapath.md says about a class's frames.
type Expect uint8

const (
	// ExpectAny: the outcome depends on the random draw (random mutations).
	ExpectAny Expect = iota
	// ExpectWellFormed: every frame of the class parses.
	ExpectWellFormed
	// ExpectMalformed: every frame of the class is malformed.
	ExpectMalformed
)

func (e Expect) String() string {
	switch e {
	case ExpectWellFormed:
		return "well-formed"
	case ExpectMalformed:
		return "malformed"
	}
	return "any"
}

// Packet is one generated frame.
type Packet struct {
	Class  Class
	Expect Expect
	Frame  []byte
}

// classGen generates the frames of one class.
type classGen struct {
	class  Class
	expect Expect
	weight int
	gen    func(r *rand.Rand) []byte
}

// Classes lists every class the generator produces, in generation order.
func Classes() []Class {
	cs := make([]Class, len(classGens))
	for i, g := range classGens {
		cs[i] = g.class
	}
	return cs
}

// ExpectOf returns what the datapath algorithm says about class c.
func ExpectOf(c Class) Expect {
	for _, g := range classGens {
		if g.class == c {
			return g.expect
		}
	}
	return ExpectAny
}

// Generate returns n frames derived from seed: one of every class first (so
// every class is present whenever n >= len(Classes())), then classes drawn by
// weight.
func Generate(seed int64, n int) []Packet {
	r := rand.New(rand.NewSource(seed))
	total := 0
	for _, g := range classGens {
		total += g.weight
	}
	out := make([]Packet, 0, n)
	for i := 0; i < n; i++ {
		var g classGen
		if i < len(classGens) {
			g = classGens[i]
		} else {
			w := r.Intn(total)
			for _, c := range classGens {
				if w < c.weight {
					g = c
					break
				}
				w -= c.weight
			}
		}
		out = append(out, Packet{Class: g.class, Expect: g.expect, Frame: g.gen(r)})
	}
	return out
}

// Packets returns the frames of Generate(seed, n).
func Packets(seed int64, n int) [][]byte {
	ps := Generate(seed, n)
	fs := make([][]byte, len(ps))
	for i, p := range ps {
		fs[i] = p.Frame
	}
	return fs
}

// ClassFrames returns n frames of class c derived from seed, or false when
// there is no such class. Golden lab cases use it to name a pitfall in their
// packet lists instead of spelling its bytes.
func ClassFrames(c Class, seed int64, n int) ([][]byte, bool) {
	for _, g := range classGens {
		if g.class != c {
			continue
		}
		r := rand.New(rand.NewSource(seed))
		out := make([][]byte, n)
		for i := range out {
			out[i] = g.gen(r)
		}
		return out, true
	}
	return nil, false
}
