package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// durationFlag is a time.Duration flag that refuses values that make no
// sense for a wait or an interval: negative ones always, zero unless the
// flag gives zero a meaning (zeroOK). Every duration flag of xdpc is one,
// so "--confirm 0s" or "--watch -1s" is a usage error rather than a
// silent "off".
type durationFlag struct {
	d      *time.Duration
	zeroOK bool
}

// durationVar registers a durationFlag on fs.
func durationVar(fs *pflag.FlagSet, p *time.Duration, name string, value time.Duration, zeroOK bool, usage string) {
	*p = value
	fs.Var(durationFlag{p, zeroOK}, name, usage)
}

func (f durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration such as 500ms, 30s or 2m")
	}
	switch {
	case d < 0:
		return errors.New("must not be negative")
	case d == 0 && !f.zeroOK:
		return errors.New("must be longer than zero")
	}
	*f.d = d
	return nil
}

func (f durationFlag) String() string {
	if f.d == nil || *f.d == 0 {
		return "0" // pflag leaves a "0" default out of the help
	}
	return f.d.String()
}

func (durationFlag) Type() string { return "duration" }

// refuseFlag registers name as a hidden flag that c has no use for, so
// that giving it is a usage error saying why (c ignores it) rather than a
// silent no-op or a bare "unknown flag".
func refuseFlag(c *cobra.Command, name, why string) {
	c.Flags().String(name, "", "")
	if err := c.Flags().MarkHidden(name); err != nil {
		panic(err)
	}
	prev := c.PreRunE
	c.PreRunE = func(c *cobra.Command, args []string) error {
		if c.Flags().Changed(name) {
			return usageError(fmt.Errorf("%s takes no --%s: %s", c.CommandPath(), name, why))
		}
		if prev != nil {
			return prev(c, args)
		}
		return nil
	}
}
