package rawlog

import (
	"strings"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	log := "@time=2026-11-23T08:00:00.123Z;msgid=abc :w1!~svc@host PRIVMSG #t.jobs :hello there\r\n" +
		"\n" +
		":srv 001 me :Welcome\n" +
		"@time=2026-11-23T08:00:01.000Z :w2!~svc@host QUIT :Quit: bye\n"
	lines, err := Read(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3", len(lines))
	}
	l := lines[0]
	if l.N != 1 || l.Nick != "w1" || l.Command() != "PRIVMSG" || l.Param(0) != "#t.jobs" || l.Text() != "hello there" {
		t.Errorf("line 1: %+v", l)
	}
	if want := time.Date(2026, 11, 23, 8, 0, 0, 123e6, time.UTC); !l.Time.Equal(want) {
		t.Errorf("time %s, want %s", l.Time, want)
	}
	if ok, id := l.Msg.GetTag("msgid"); !ok || id != "abc" {
		t.Errorf("msgid %q", id)
	}
	if lines[1].N != 3 || lines[1].Nick != "srv" || !lines[1].Time.IsZero() {
		t.Errorf("line 3: %+v", lines[1])
	}
	if lines[2].Command() != "QUIT" || lines[2].Text() != "Quit: bye" {
		t.Errorf("line 4: %+v", lines[2])
	}
}

func TestReadErrors(t *testing.T) {
	for name, log := range map[string]string{
		"bad time":   "@time=yesterday :a PRIVMSG #x :y\n",
		"no command": ":onlyasource\n",
		"too long":   ":a PRIVMSG #x :" + strings.Repeat("x", MaxLine) + "\n",
	} {
		lines, err := Read(strings.NewReader(":ok PING :x\n" + log))
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if len(lines) != 1 {
			t.Errorf("%s: %d good lines before the error, want 1", name, len(lines))
		}
		if !strings.Contains(err.Error(), "line 2") && name != "too long" {
			t.Errorf("%s: error %q does not name line 2", name, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("@time=2026-11-23T08:00:00.123Z;+meshbot/e=AAA :n!u@h PRIVMSG #c :mesh event t 1234abcd (3 B)")
	f.Add(":srv 366 me #c :End")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		l, err := Parse(raw)
		if err != nil {
			return
		}
		_ = l.Command()
		_ = l.Text()
		_ = l.Param(3)
	})
}
