package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// loadSecrets reads the API token, the read token and the NATS observer
// password. A
// secret file readable by group or others is refused: the token controls
// processes on this machine.
func (c *config) loadSecrets(lookupEnv func(string) (string, bool)) error {
	env, hasEnv := lookupEnv("HIVE_API_TOKEN")
	switch {
	case hasEnv && c.APITokenFile != "":
		return errors.New("both HIVE_API_TOKEN and --api-token-file are set; use one")
	case hasEnv:
		c.apiToken = strings.TrimSpace(env)
		if c.apiToken == "" {
			return errors.New("HIVE_API_TOKEN is set but empty")
		}
	case c.APITokenFile != "":
		tok, err := readSecretFile(c.APITokenFile)
		if err != nil {
			return fmt.Errorf("--api-token-file: %w", err)
		}
		c.apiToken = tok
	}
	readEnv, hasReadEnv := lookupEnv("HIVE_API_READ_TOKEN")
	switch {
	case hasReadEnv && c.APIReadTokenFile != "":
		return errors.New("both HIVE_API_READ_TOKEN and --api-read-token-file are set; use one")
	case hasReadEnv:
		c.apiReadToken = strings.TrimSpace(readEnv)
		if c.apiReadToken == "" {
			return errors.New("HIVE_API_READ_TOKEN is set but empty")
		}
	case c.APIReadTokenFile != "":
		tok, err := readSecretFile(c.APIReadTokenFile)
		if err != nil {
			return fmt.Errorf("--api-read-token-file: %w", err)
		}
		c.apiReadToken = tok
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
