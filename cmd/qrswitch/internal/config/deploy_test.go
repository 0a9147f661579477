package config

import (
	"testing"
)

// TestDeployConfigsLoad loads the configurations shipped under deploy/ the
// way `qrswitch serve --config` would, so a renamed key or a bad value there
// fails here rather than at an operator's start-up.
func TestDeployConfigsLoad(t *testing.T) {
	for _, tt := range []struct {
		path       string
		production bool
		environ    []string
	}{
		{"../../../../deploy/qrswitch.yaml", true, nil},
		{"../../../../deploy/kubernetes/qrswitch.yaml", true, []string{"QRSWITCH_STORE_URL=redis://:secret@redis:6379/0", "QRSWITCH_PARTNERS_0_PASSWORD=x"}},
		{"../../../../deploy/compose/qrswitch.yaml", false, nil},
	} {
		t.Run(tt.path, func(t *testing.T) {
			c, err := Load(tt.path, tt.environ)
			if err != nil {
				t.Fatalf("Load(%s) error = %v", tt.path, err)
			}
			if c.Production() != tt.production {
				t.Errorf("Load(%s).Production() = %v, want %v", tt.path, c.Production(), tt.production)
			}
		})
	}
}
