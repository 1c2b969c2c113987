package gateway

import (
	"testing"
)

func TestRescale(t *testing.T) {
	for _, c := range []struct {
		field    uint16
		from, to uint8
		want     uint16
	}{
		{100, 7, 7, 100},
		{100, 9, 7, 400},
		{100, 7, 9, 25},
		{65535, 14, 0, 65535},
		{502, 7, 0, 64256},
		{3, 0, 7, 0},
	} {
		if got := rescale(c.field, c.from, c.to); got != c.want {
			t.Errorf("rescale(%d, %d, %d) = %d, want %d", c.field, c.from, c.to, got, c.want)
		}
	}
}
