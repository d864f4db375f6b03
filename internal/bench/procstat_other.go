//go:build !linux

package bench

import (
	"errors"
	"time"
)

func processCPU(int) (time.Duration, error) {
	return 0, errors.New("bench: process CPU time needs Linux /proc")
}
func selfCPU() time.Duration     { return 0 }
func machineBusy() time.Duration { return 0 }
func loadAverage() float64       { return 0 }
