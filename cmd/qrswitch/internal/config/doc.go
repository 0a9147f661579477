// Package config owns the operator contract of qrswitch: the YAML
// configuration file, its QRSWITCH_* environment overrides, the defaults, the
// built-in development setup, and the rules a configuration must pass before
// the switch starts (stricter when env is production).
//
// It is a leaf: it checks shape and values and imports no package of this
// project. Opening the store, loading certificates and selecting rails happen
// where the configuration is wired, in cmd/qrswitch.
//
// Load is the one entry point:
//
//	cfg, err := config.Load(path, os.Environ())
//
// An empty path selects the development setup. Log cfg.Redacted(), never cfg:
// the configuration holds secrets.
package config
