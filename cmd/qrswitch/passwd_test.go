package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

func TestPasswd(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"passwd", "--cost", "10"}, nil, strings.NewReader("s3cret\n"), &out, &errOut)
	if err != nil {
		t.Fatalf("passwd: %v (%s)", err, errOut.String())
	}
	h := strings.TrimSpace(out.String())
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("s3cret")) != nil {
		t.Fatalf("printed hash %q does not verify the password", h)
	}
	if c, _ := bcrypt.Cost([]byte(h)); c != 10 {
		t.Fatalf("cost = %d, want 10", c)
	}
	for _, tt := range []struct {
		args  []string
		stdin string
	}{
		{[]string{"passwd"}, ""},
		{[]string{"passwd", "--cost", "4"}, "x\n"},
	} {
		if err := run(context.Background(), tt.args, nil, strings.NewReader(tt.stdin), &out, &errOut); err == nil {
			t.Errorf("run(%v, %q) succeeded, want an error", tt.args, tt.stdin)
		}
	}
}
