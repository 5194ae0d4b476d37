// Package ircd runs real IRC servers — InspIRCd (the default), ngIRCd or
// ergo — as throwaway processes for integration tests and local demos, and
// probes what a server offers. There is no fake IRC server in meshbot.
//
// The server is chosen by the MESH_IRCD environment variable (ParseSpec,
// SpecFromEnv); its configuration comes from the files embedded in
// meshbot.IRCdConfigs (testdata/ in the repository), tuned for bots: no
// flood throttling, large send queues, no DNS or ident lookups, dead clients
// noticed within seconds.
//
// Guarantees:
//
//   - A server listens on 127.0.0.1 only, on a port that was free when
//     picked (Options.Port to choose one), with a private temporary
//     directory for its config, logs and database.
//   - Start returns only once a client can connect and register (RPL_WELCOME
//     received): InspIRCd takes about a second per registration. StartLinked
//     returns only once the two InspIRCd servers see each other in LINKS.
//   - Every wait is bounded (Options.ReadyTimeout, Options.StopTimeout, the
//     caller's context); errors quote the end of the server's log.
//   - Stop sends SIGTERM, then SIGKILL after Options.StopTimeout, waits for
//     the exit and removes the directory; it is idempotent. Kill simulates a
//     crash and Restart brings the server back on the same port. On Linux a
//     server is also killed if the process that started it dies.
//   - Log returns the server's output (and InspIRCd's log file), also after
//     Stop.
//   - StartWithAccounts starts a server with accounts for SASL PLAIN and,
//     on its TLS port, EXTERNAL: InspIRCd linked to atheme-services, whose
//     process the Server owns and stops, or ergo; ngIRCd has none
//     (ErrNoAccounts). It returns once the server offers sasl and every
//     account can log in.
//
// Decide features from Probe's answer (CAP LS 302 and ISUPPORT), never from
// Kind: the same kind can be configured or built differently.
//
// Package ircdtest wraps all this for tests (start from MESH_IRCD, stop at
// cleanup, print the log on failure).
package ircd
