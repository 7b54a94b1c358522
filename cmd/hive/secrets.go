package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// tokenFrom reads a token from the variable env or the file its setting
// names, not both; "" where neither is set.
func tokenFrom(lookupEnv func(string) (string, bool), env, file, setting string) (string, error) {
	v, hasEnv := lookupEnv(env)
	switch {
	case hasEnv && file != "":
		return "", fmt.Errorf("both %s and %s are set; use one", env, setting)
	case hasEnv:
		if v = strings.TrimSpace(v); v == "" {
			return "", fmt.Errorf("%s is set but empty", env)
		}
		return v, nil
	case file != "":
		tok, err := readSecretFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", setting, err)
		}
		return tok, nil
	}
	return "", nil
}

// loadSecrets reads the API token, the read token and the NATS observer
// password. A
// secret file readable by group or others is refused: the token controls
// processes on this machine.
func (c *config) loadSecrets(lookupEnv func(string) (string, bool)) error {
	var err error
	if c.apiToken, err = tokenFrom(lookupEnv, "HIVE_API_TOKEN", c.APITokenFile, "--api-token-file"); err != nil {
		return err
	}
	if c.apiReadToken, err = tokenFrom(lookupEnv, "HIVE_API_READ_TOKEN", c.APIReadTokenFile, "--api-read-token-file"); err != nil {
		return err
	}
	if (c.NATS.ObserverUser == "") != (c.NATSPasswordFile == "") {
		return errors.New("--nats-user and --nats-password-file go together")
	}
	if c.NATSPasswordFile != "" {
		pw, err := readSecretFile(c.NATSPasswordFile)
		if err != nil {
			return fmt.Errorf("--nats-password-file: %w", err)
		}
		c.natsPassword = pw
	}
	return nil
}

// readSecretFile returns a file's trimmed content if only its owner may
// read it.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if err := ownerOnly(path, st); err != nil {
		return "", err
	}
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// ownerOnly refuses a secret file that group or others may read.
func ownerOnly(path string, st os.FileInfo) error {
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s has mode %04o: group and others must have no access (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	return nil
}
