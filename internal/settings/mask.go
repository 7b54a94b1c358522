package settings

import (
	"net/url"
	"strings"
)

// MaskURLPasswords hides the password of a URL's user info; a
// comma-separated list (the nodes of a hub cluster) has each one hidden.
func MaskURLPasswords(s string) string {
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

// URLsCarryPassword reports whether any of the comma-separated URLs has a
// password in its user info.
func URLsCarryPassword(list string) bool {
	for _, u := range strings.Split(list, ",") {
		if pu, err := url.Parse(strings.TrimSpace(u)); err == nil && pu.User != nil {
			if _, ok := pu.User.Password(); ok {
				return true
			}
		}
	}
	return false
}
