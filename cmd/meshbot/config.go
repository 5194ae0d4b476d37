package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// Saved connection settings: named contexts in a TOML file, as nats
// contexts are. A context sets the flags that have an environment
// variable (those of connection, identity-free trust and logging); a flag
// on the command line wins over its environment variable, which wins over
// the context, which wins over the default.
//
//	# ~/.config/meshbot/config.toml
//	context = "local"            # used when --context and MESHBOT_CONTEXT are not set
//
//	[contexts.local]
//	server = "127.0.0.1:6667"
//
//	[contexts.prod]
//	server = "irc.example.net:6697"
//	tls = true
//	namespace = "shop"
//	sasl-user = "shop-bot"
//	keyring = "~/keys/shop.keyring"

// configEnv names the variable that points at another config file.
const configEnv = "MESHBOT_CONFIG"

// contextEnv names the variable that selects a context.
const contextEnv = "MESHBOT_CONTEXT"

// configFile is the file's content.
type configFile struct {
	Context  string                    `toml:"context"`
	Contexts map[string]map[string]any `toml:"contexts"`
}

// configPath is where the config file is: $MESHBOT_CONFIG, else
// $XDG_CONFIG_HOME/meshbot/config.toml, else ~/.config/meshbot/config.toml.
// explicit says whether MESHBOT_CONFIG named it (then it must exist).
func configPath(getenv func(string) string) (path string, explicit bool) {
	if p := getenv(configEnv); p != "" {
		return p, true
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			return "", false
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "meshbot", "config.toml"), false
}

// loadConfig reads the config file; a missing default file is no error.
func loadConfig(getenv func(string) string) (*configFile, string, error) {
	path, explicit := configPath(getenv)
	if path == "" {
		return &configFile{}, "", nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return &configFile{}, path, nil
	}
	if err != nil {
		return nil, path, fmt.Errorf("config: %w", err)
	}
	var c configFile
	if _, err := toml.Decode(string(b), &c); err != nil {
		return nil, path, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, path, nil
}

// applyContext sets every flag of fs that has an environment variable,
// was not given on the command line and whose variable is not set, from
// the selected context. name is --context ("" when not given).
func applyContext(fs *pflag.FlagSet, getenv func(string) string, name string) error {
	if name == "" {
		name = getenv(contextEnv)
	}
	c, path, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	explicit := name != ""
	if name == "" {
		name = c.Context
	}
	if name == "" {
		return nil
	}
	values, ok := c.Contexts[name]
	if !ok {
		if !explicit {
			return fmt.Errorf("config %s: the default context %q is not defined (want a [contexts.%s] table)", path, name, name)
		}
		return usagef("no context %q in %s (contexts: %s)", name, orNone(path), orNone(strings.Join(contextNames(c), ", ")))
	}
	for key, v := range values {
		flag := strings.ReplaceAll(key, "_", "-")
		f := fs.Lookup(flag)
		if f == nil {
			if !knownContextKey(flag) {
				return fmt.Errorf("config %s: context %q: unknown setting %q", path, name, key)
			}
			continue // a setting of other commands
		}
		envs := f.Annotations[envAnnotation]
		if f.Changed || len(envs) == 0 || getenv(envs[0]) != "" {
			continue
		}
		s, err := contextValue(v)
		if err == nil && (flag == "keyring" || strings.HasSuffix(flag, "-file") || pathFlags[flag]) {
			s, err = expandHome(s, getenv)
		}
		if err == nil {
			err = f.Value.Set(s)
		}
		if err != nil {
			return fmt.Errorf("config %s: context %q: %s: %v", path, name, key, err)
		}
	}
	return nil
}

// contextKeys are the settings a context may hold: the flags with an
// environment variable, on any command.
var contextKeys = []string{
	"server", "namespace", "tls", "tls-insecure", "sasl-user", "sasl-pass",
	"hmac-key-file", "ed25519-key-file", "keyring", "require-signed", "log-level", "ircd",
	"console-account", "console-restricted",
	"sasl-pass-file", "sasl-external", "tls-cert", "tls-key", "tls-ca",
}

// pathFlags are the settings besides keyring and *-file that name files
// ("~/" is the home directory there too).
var pathFlags = map[string]bool{"tls-cert": true, "tls-key": true, "tls-ca": true}

func knownContextKey(k string) bool { return slices.Contains(contextKeys, k) }

func contextNames(c *configFile) []string {
	var names []string
	for n := range c.Contexts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// contextValue turns a TOML value into flag text.
func contextValue(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, not %T", v)
}

// expandHome expands a leading ~/ in a path.
func expandHome(p string, getenv func(string) string) (string, error) {
	if !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home := getenv("HOME")
	if home == "" {
		return "", fmt.Errorf("%q: HOME is not set", p)
	}
	return filepath.Join(home, p[2:]), nil
}
