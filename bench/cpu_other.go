//go:build !unix

package main

import "time"

// cpuTime returns 0: this platform's processor time is not read.
func cpuTime() time.Duration { return 0 }
