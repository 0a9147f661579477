// Command qrswitch-healthcheck is the container image's health check: it
// asks the switch's admin listener for /healthz (or the URL it is given)
// and exits 0 on 200, 1 otherwise. The image has no shell and no curl, and
// Docker's HEALTHCHECK runs a command inside the container, so the check is
// this small static binary beside qrswitch.
//
//	qrswitch-healthcheck [URL]    default http://127.0.0.1:9090/healthz
//
// QRSWITCH_HEALTHCHECK_URL, when set, replaces the default, for a
// container whose admin_listen is elsewhere.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// DefaultURL is the admin listener of the image's configuration.
const DefaultURL = "http://127.0.0.1:9090/healthz"

func main() {
	url := DefaultURL
	if v := os.Getenv("QRSWITCH_HEALTHCHECK_URL"); v != "" {
		url = v
	}
	if len(os.Args) > 1 {
		url = os.Args[1]
	}
	if err := check(context.Background(), url, 3*time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "qrswitch-healthcheck:", err)
		os.Exit(1)
	}
}

// check GETs url within timeout and wants 200.
func check(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building request: %w", err)
	}
	client := &http.Client{Timeout: timeout}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("asking %s: %w", url, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
