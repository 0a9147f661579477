package redisstore

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Parameters of the store URL that this package reads itself; every other
// query parameter goes to go-redis (dial_timeout, read_timeout, pool_size,
// client_name, protocol, …), which refuses one it does not know.
const (
	paramPrefix           = "key_prefix"
	paramCAFile           = "ca_file"
	paramSentinelPassword = "sentinel_password"
)

// DefaultPrefix starts every key the store writes, unless the URL's
// key_prefix says otherwise.
const DefaultPrefix = "qrs:"

// endpoint is what a store URL says: how to reach Redis and where in it the
// store's keys live.
type endpoint struct {
	prefix   string
	single   *redis.Options         // redis:// and rediss://
	failover *redis.FailoverOptions // redis+sentinel://
}

// parseURL reads a store URL (see the package comment). Messages name the
// URL by its scheme only: it may carry a password.
func parseURL(raw string) (*endpoint, error) {
	scheme, _, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, fmt.Errorf("store url: want redis://, rediss:// or redis+sentinel://")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("store url (%s://…): %w", scheme, err)
	}
	q := u.Query()
	ep := &endpoint{prefix: DefaultPrefix}
	if vs, ok := q[paramPrefix]; ok {
		if len(vs) != 1 || vs[0] == "" {
			return nil, fmt.Errorf("store url (%s://…): %s must be given once, not empty", scheme, paramPrefix)
		}
		ep.prefix = vs[0]
		q.Del(paramPrefix)
	}
	caFile := q.Get(paramCAFile)
	q.Del(paramCAFile)

	switch scheme {
	case "redis", "rediss":
		u.RawQuery = q.Encode()
		ep.single, err = redis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("store url (%s://…): %w", scheme, err)
		}
		if caFile != "" {
			if scheme != "rediss" {
				return nil, fmt.Errorf("store url (%s://…): %s needs rediss:// (TLS)", scheme, paramCAFile)
			}
			if ep.single.TLSConfig.RootCAs, err = loadCA(caFile); err != nil {
				return nil, err
			}
		}
	case "redis+sentinel":
		if ep.failover, err = parseSentinel(u, q); err != nil {
			return nil, fmt.Errorf("store url (%s://…): %w", scheme, err)
		}
		if caFile != "" {
			return nil, fmt.Errorf("store url (%s://…): %s is for rediss:// only", scheme, paramCAFile)
		}
	default:
		return nil, fmt.Errorf("store url: scheme %q is not a Redis one (redis://, rediss://, redis+sentinel://)", scheme)
	}
	return ep, nil
}

// parseSentinel reads redis+sentinel://[:password@]MASTER/HOST:PORT,HOST:PORT[/DB]
// into go-redis failover options: the user info is the data nodes'
// credentials, sentinel_password the sentinels' own.
func parseSentinel(u *url.URL, q url.Values) (*redis.FailoverOptions, error) {
	master := u.Host
	if master == "" {
		return nil, fmt.Errorf("no master name: want redis+sentinel://MASTER/HOST:PORT,HOST:PORT[/DB]")
	}
	path := strings.TrimPrefix(u.Path, "/")
	hosts, db, _ := strings.Cut(path, "/")
	if hosts == "" {
		return nil, fmt.Errorf("no sentinel addresses: want redis+sentinel://MASTER/HOST:PORT,HOST:PORT[/DB]")
	}
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		if _, _, err := net.SplitHostPort(h); err != nil {
			return nil, fmt.Errorf("sentinel address %q: want HOST:PORT", h)
		}
		addrs = append(addrs, h)
	}
	// Build the URL go-redis's own parser takes, so that every tuning
	// parameter it knows works here too: its user info is the sentinels'
	// credentials and its password parameter the data nodes'.
	g := url.URL{Scheme: "redis", Host: addrs[0]}
	if db != "" {
		g.Path = "/" + db
	}
	if sp := q.Get(paramSentinelPassword); sp != "" {
		g.User = url.UserPassword("", sp)
	}
	q.Del(paramSentinelPassword)
	if q.Has("master_name") || q.Has("addr") || q.Has("password") || q.Has("username") {
		return nil, fmt.Errorf("give the master name, sentinel addresses and credentials in the URL's parts, not as parameters")
	}
	q.Set("master_name", master)
	for _, a := range addrs[1:] {
		q.Add("addr", a)
	}
	if u.User != nil {
		if name := u.User.Username(); name != "" {
			q.Set("username", name)
		}
		if pw, ok := u.User.Password(); ok {
			q.Set("password", pw)
		}
	}
	g.RawQuery = q.Encode()
	return redis.ParseFailoverURL(g.String())
}

func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("store url ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("store url ca_file %s: no PEM certificate in it", file)
	}
	return pool, nil
}
