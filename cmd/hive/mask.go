package main

import (
	"net/url"
	"strings"
)

// maskURL hides the password of a URL's user info; a comma-separated list
// (the nodes of a hub cluster) has each one hidden.
func maskURL(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil || u.User == nil {
			continue
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
