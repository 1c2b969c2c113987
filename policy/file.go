package policy

import "io"

// Parse decodes and validates a policy file; name is used in errors.
func Parse(name string, data []byte) (*Policy, error) { panic("todo") }

// Load reads and parses the policy file at path.
func Load(path string) (*Policy, error) { panic("todo") }

// Default returns the embedded default policy.
func Default() (*Policy, error) { panic("todo") }

// Format writes p as a policy file with every default filled in.
func (p *Policy) Format(w io.Writer) error { panic("todo") }
