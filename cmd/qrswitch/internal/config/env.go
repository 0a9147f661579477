package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// EnvPrefix starts the name of every environment variable that overrides a
// key: QRSWITCH_ then the YAML path upper-cased and joined by "_", with list
// elements by index (QRSWITCH_STORE_URL, QRSWITCH_PARTNERS_0_BASE_URL).
const EnvPrefix = "QRSWITCH_"

// ErrUnknownVar is wrapped by the EnvError of a QRSWITCH_ variable that
// names no configuration key: a typo must not be silently ignored.
var ErrUnknownVar = errors.New("names no configuration key")

// EnvError reports a QRSWITCH_ environment variable that names no key, or
// whose value the key cannot take.
type EnvError struct {
	// Var is the variable, e.g. QRSWITCH_SAF_WORKERS.
	Var string
	// Path is the key it names, as in YAML (saf.workers); empty when it
	// names none.
	Path string
	// Err says what is wrong.
	Err error
}

// Error names the variable, the key it sets and what is wrong.
func (e *EnvError) Error() string {
	if e.Path == "" {
		return e.Var + ": " + e.Err.Error()
	}
	return e.Var + " (" + e.Path + "): " + e.Err.Error()
}

// Unwrap returns Err, so errors.Is(err, ErrUnknownVar) works.
func (e *EnvError) Unwrap() error { return e.Err }

// An override is one QRSWITCH_ variable resolved to the key it sets. The
// path holds, per level, a struct field index or a list index; for a
// rail's option, the partner's index, with the option's key in key.
type override struct {
	name, value string
	path        []int
	key         string
}

// optionOverride recognises QRSWITCH_PARTNERS_<i>_OPTIONS_<KEY>: KEY,
// lower-cased, is one key of the partner's options (which the rail
// decodes; nested options cannot be reached this way).
func optionOverride(name, value string) (override, bool) {
	rest, ok := strings.CutPrefix(name, EnvPrefix+"PARTNERS_")
	if !ok {
		return override{}, false
	}
	idx, rest, _ := strings.Cut(rest, "_")
	key, ok := strings.CutPrefix(rest, "OPTIONS_")
	i, isIndex := parseIndex(idx)
	if !ok || !isIndex || key == "" {
		return override{}, false
	}
	return override{name: name, value: value, path: []int{i}, key: strings.ToLower(key)}, true
}

// setOption sets one key of a partner's options, appending the partner
// when the index is one past the end.
func (c *Config) setOption(o override) error {
	i := o.path[0]
	switch n := len(c.Partners); {
	case i == n:
		c.Partners = append(c.Partners, Partner{})
	case i > n:
		return fmt.Errorf("index %d is out of range: the list has %d element(s), and index %d would append one", i, n, n)
	}
	node := &c.Partners[i].Options
	switch node.Kind {
	case 0:
		*node = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	case yaml.MappingNode:
	default:
		return errors.New("the partner's options are not a mapping")
	}
	for j := 0; j+1 < len(node.Content); j += 2 {
		if node.Content[j].Value == o.key {
			node.Content[j+1] = &yaml.Node{Kind: yaml.ScalarNode, Value: o.value}
			return nil
		}
	}
	node.Content = append(node.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: o.key},
		&yaml.Node{Kind: yaml.ScalarNode, Value: o.value})
	return nil
}

// applyEnv sets every key named by a QRSWITCH_ variable in environ. It walks
// the yaml tags of Config, so a new key gets its variable for free. A list
// index one past the end appends an element; variables are applied in key
// order, so PARTNERS_1_* all land on the element the first of them appended.
func (c *Config) applyEnv(environ []string) error {
	root := reflect.TypeFor[Config]()
	var (
		errs []error
		todo []override
		seen = make(map[string]bool)
	)
	var opts []override
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		// The first occurrence wins, as with os.Getenv.
		if !ok || !strings.HasPrefix(name, EnvPrefix) || seen[name] {
			continue
		}
		seen[name] = true
		if o, ok := optionOverride(name, value); ok {
			opts = append(opts, o)
			continue
		}
		paths := resolve(root, strings.TrimPrefix(name, EnvPrefix))
		switch len(paths) {
		case 0:
			errs = append(errs, &EnvError{Var: name, Err: ErrUnknownVar})
		case 1:
			todo = append(todo, override{name: name, value: value, path: paths[0]})
		default:
			keys := make([]string, len(paths))
			for i, p := range paths {
				keys[i] = keyOf(root, p)
			}
			errs = append(errs, &EnvError{Var: name, Err: fmt.Errorf("names more than one key: %s", strings.Join(keys, ", "))})
		}
	}
	slices.SortFunc(todo, func(a, b override) int { return slices.Compare(a.path, b.path) })
	v := reflect.ValueOf(c).Elem()
	for _, o := range todo {
		if err := set(v, o.path, o.value); err != nil {
			errs = append(errs, &EnvError{Var: o.name, Path: keyOf(root, o.path), Err: err})
		}
	}
	// Options after the keys, so that PARTNERS_1_RAIL may append the
	// partner whose options follow.
	slices.SortFunc(opts, func(a, b override) int { return strings.Compare(a.name, b.name) })
	for _, o := range opts {
		if err := c.setOption(o); err != nil {
			errs = append(errs, &EnvError{Var: o.name, Path: fmt.Sprintf("partners[%d].options.%s", o.path[0], o.key), Err: err})
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// resolve returns every path through t that name spells: upper-case YAML
// keys and list indexes joined by "_", ending on a value that can be set
// from text. Keys may contain "_" themselves (base_url), so every key that
// prefixes name is tried.
func resolve(t reflect.Type, name string) [][]int {
	if t == yamlNodeType {
		return nil // a rail's options: see optionOverride
	}
	if settable(t) {
		if name == "" {
			return [][]int{nil}
		}
		return nil
	}
	if name == "" {
		return nil // a section or a list, not a value
	}
	var paths [][]int
	prepend := func(i int, rest string) {
		for _, p := range resolve(elemOrField(t, i), rest) {
			paths = append(paths, append([]int{i}, p...))
		}
	}
	switch t.Kind() {
	case reflect.Struct:
		for i := range t.NumField() {
			key := yamlKey(t.Field(i))
			if key == "" {
				continue
			}
			rest, ok := strings.CutPrefix(name, strings.ToUpper(key))
			switch {
			case !ok:
			case rest == "":
				prepend(i, "")
			case rest[0] == '_' && len(rest) > 1:
				prepend(i, rest[1:])
			}
		}
	case reflect.Slice:
		idx, rest, more := strings.Cut(name, "_")
		if i, ok := parseIndex(idx); ok && (!more || rest != "") {
			prepend(i, rest)
		}
	}
	return paths
}

func elemOrField(t reflect.Type, i int) reflect.Type {
	if t.Kind() == reflect.Slice {
		return t.Elem()
	}
	return t.Field(i).Type
}

// parseIndex accepts a list index in plain decimal; a leading zero is
// refused so that two variables cannot name one element.
func parseIndex(s string) (int, bool) {
	if s == "" || (len(s) > 1 && s[0] == '0') || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	i, err := strconv.Atoi(s)
	return i, err == nil
}

// yamlKey returns the YAML key of f as yaml.v3 names it, or "" when f is not
// in the YAML.
func yamlKey(f reflect.StructField) string {
	if !f.IsExported() {
		return ""
	}
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch name {
	case "-":
		return ""
	case "":
		return strings.ToLower(f.Name)
	}
	return name
}

// keyOf renders a path as in YAML and in validation problems:
// partners[1].base_url.
func keyOf(t reflect.Type, path []int) string {
	var b strings.Builder
	for _, i := range path {
		if t.Kind() == reflect.Slice {
			fmt.Fprintf(&b, "[%d]", i)
			t = t.Elem()
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(yamlKey(t.Field(i)))
		t = t.Field(i).Type
	}
	return b.String()
}

var (
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlNodeType        = reflect.TypeFor[yaml.Node]()
)

// settable reports whether a value of type t can be set from the text of an
// environment variable.
func settable(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return true
	}
	return false
}

// set walks path from v, appending a list element where the index is one
// past the end, and sets the value it reaches from text.
func set(v reflect.Value, path []int, text string) error {
	for _, i := range path {
		if v.Kind() != reflect.Slice {
			v = v.Field(i)
			continue
		}
		switch n := v.Len(); {
		case i == n:
			v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
		case i > n:
			return fmt.Errorf("index %d is out of range: the list has %d element(s), and index %d would append one", i, n, n)
		}
		v = v.Index(i)
	}
	if u, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return u.UnmarshalText([]byte(text))
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(text)
	case reflect.Bool:
		b, err := strconv.ParseBool(text)
		if err != nil {
			return fmt.Errorf("invalid boolean %q: use true or false", text)
		}
		v.SetBool(b)
	default:
		n, err := strconv.ParseInt(text, 10, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", text)
		}
		v.SetInt(n)
	}
	return nil
}
