//go:build !unix

package producer

import (
	"fmt"
	"os"
)

// lockDir fails: the spool needs flock, which this platform lacks.
func lockDir(dir string) (*os.File, error) {
	return nil, fmt.Errorf("%w: the spool needs flock (unix only)", ErrInvalidConfig)
}
