package main

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/meshbot/meshbot/envelope"
	"github.com/meshbot/meshbot/mesh"
)

func newReqCmd(st *state) *cobra.Command {
	var (
		conn        connFlags
		id          identityFlags
		trust       trustFlags
		timeout     time.Duration
		contentType string
	)
	cmd := &cobra.Command{
		Use:   "req SERVICE METHOD [PAYLOAD|-]",
		Short: "Send a request to a service and print the answer",
		Long: `Send PAYLOAD to METHOD of one live instance of SERVICE (by private message)
and print the answer on stdout, as is. With "-" the payload is read from
stdin; without PAYLOAD it is empty.

If the service answers with an error, its code and message are printed on
stderr and the exit code is 1. If the asked instance leaves before
answering, the request goes to another one.`,
		Example: `  # Against the demo ('meshbot demo'), whose pricing service prices
  # {"item":ITEM,"qty":N} for tea, coffee, scone and bagel:
  meshbot req pricing quote '{"item":"tea","qty":2}'
  echo '{"item":"scone","qty":1}' | meshbot req pricing quote - --timeout 2s
  meshbot req pricing quote '{"item":"unicorn","qty":1}'   # error 400, exit 1

  meshbot req inventory count --namespace shop`,
		Args: nargs(2, 3, "SERVICE METHOD [PAYLOAD|-]"),
		RunE: func(cmd *cobra.Command, a []string) error {
			service, method := a[0], a[1]
			if timeout <= 0 {
				return usagef("req: --timeout must be positive")
			}
			cfg, err := nodeConfig(st, &conn, &id, &trust)
			if err != nil {
				return err
			}
			var payload []byte
			if len(a) == 3 {
				if payload, err = readInput(a[2], st.env.stdin, int64(cfg.MaxEnvelope)); err != nil {
					return err
				}
			}
			ctx := cmd.Context()
			n, err := conn.connect(ctx, cfg)
			if err != nil {
				return err
			}
			defer conn.closeNode(st, n)
			var opts []mesh.RequestOption
			if contentType != "" {
				opts = append(opts, mesh.WithRequestHeaders(envelope.Headers{ContentType: contentType}))
			}
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out, err := n.Request(rctx, service, method, payload, opts...)
			var re *mesh.RemoteError
			switch {
			case errors.As(err, &re):
				return fmt.Errorf("%s-%s answered %s.%s with error %d: %s", re.Service, re.Instance, service, method, re.Code, re.Message)
			case errors.Is(err, mesh.ErrNoResponders):
				return fmt.Errorf("no instance of service %q is present in namespace %q on %s", service, cfg.Namespace, cfg.Server)
			case ctx.Err() != nil:
				return errors.New("interrupted")
			case rctx.Err() != nil:
				return fmt.Errorf("no answer from %s.%s within %s (--timeout)", service, method, timeout)
			case err != nil:
				return fmt.Errorf("request %s.%s: %w", service, method, err)
			}
			w := st.env.stdout
			if _, err := w.Write(out); err != nil {
				return err
			}
			if len(out) > 0 && out[len(out)-1] != '\n' && utf8.Valid(out) {
				fmt.Fprintln(w)
			}
			return nil
		},
	}
	f := cmd.Flags()
	conn.add(f, true)
	id.add(f, "meshbot")
	trust.add(f, true)
	f.DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the answer")
	f.StringVar(&contentType, "content-type", "", "content type header of the payload")
	return cmd
}
