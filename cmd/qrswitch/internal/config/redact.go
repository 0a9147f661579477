package config

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// masked stands in for a secret in the copy Redacted returns.
const masked = "****"

// Redacted returns a copy of c fit for logging the effective configuration:
// every password, password hash and URL password is replaced by "****".
// An empty secret stays empty, so the log still shows which twin is set.
func (c *Config) Redacted() *Config {
	r := *c
	r.Store.URL = redactURL(c.Store.URL)
	r.Retailers = slices.Clone(c.Retailers)
	for i := range r.Retailers {
		x := &r.Retailers[i]
		mask(&x.PasswordHash)
		mask(&x.Password)
		mask(&x.Checkout.PostbackSecret)
	}
	r.Partners = slices.Clone(c.Partners)
	for i := range r.Partners {
		x := &r.Partners[i]
		x.BaseURL = redactURL(x.BaseURL)
		mask(&x.Password)
		mask(&x.ScanPasswordHash)
		mask(&x.ScanPassword)
		x.Options = redactOptions(&c.Partners[i].Options)
	}
	r.Support = slices.Clone(c.Support)
	for i := range r.Support {
		x := &r.Support[i]
		mask(&x.PasswordHash)
		mask(&x.Password)
	}
	return &r
}

// secretOption reports whether a rail's option key names a secret: its
// value is masked in the logged configuration.
func secretOption(key string) bool {
	k := strings.ToLower(key)
	for _, w := range []string{"password", "secret", "token", "key", "xprv", "seed"} {
		if strings.Contains(k, w) && !strings.Contains(k, "public") && k != "token_address" && k != "token_decimals" {
			return true
		}
	}
	return false
}

// redactOptions copies a rail's options with every secret masked and URLs'
// passwords masked; nested mappings are walked.
func redactOptions(n *yaml.Node) yaml.Node {
	if n.Kind == 0 {
		return yaml.Node{}
	}
	out := *n
	out.Content = make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		cp := redactOptions(c)
		out.Content[i] = &cp
	}
	if n.Kind != yaml.MappingNode {
		if n.Kind == yaml.ScalarNode {
			out.Value = redactURL(n.Value)
		}
		return out
	}
	for i := 0; i+1 < len(out.Content); i += 2 {
		if v := out.Content[i+1]; v.Kind == yaml.ScalarNode && v.Value != "" && secretOption(out.Content[i].Value) {
			v.Value = masked
		}
	}
	return out
}

func mask(s *string) {
	if *s != "" {
		*s = masked
	}
}

// redactURL masks the password of a URL's user info and every query
// parameter whose name mentions a password (go-redis reads password= and
// sentinel_password= there). It edits the text rather than re-encoding a
// parsed URL, so the rest stays exactly as the operator wrote it; an
// unescaped '@' or '/' makes it mask too much, never too little.
func redactURL(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	beforeQuery, query, hasQuery := strings.Cut(rest, "?")
	if at := strings.LastIndex(beforeQuery, "@"); at >= 0 {
		if user, _, hasPassword := strings.Cut(beforeQuery[:at], ":"); hasPassword {
			beforeQuery = user + ":" + masked + beforeQuery[at:]
		}
	}
	if !hasQuery {
		return scheme + "://" + beforeQuery
	}
	query, fragment, hasFragment := strings.Cut(query, "#")
	params := strings.Split(query, "&")
	for i, p := range params {
		if name, _, _ := strings.Cut(p, "="); strings.Contains(strings.ToLower(name), "password") {
			params[i] = name + "=" + masked
		}
	}
	s = scheme + "://" + beforeQuery + "?" + strings.Join(params, "&")
	if hasFragment {
		s += "#" + fragment
	}
	return s
}
