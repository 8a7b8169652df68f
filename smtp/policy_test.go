package smtp

import "github.com/camgate/camgate/internal/lan"

func newPolicy(allow []string) (*lan.Policy, error) { return lan.NewPolicy(allow) }
