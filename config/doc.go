// Package config loads and validates corrald's configuration: a TOML file
// whose [node], [nats] and [http] settings can each be overridden from the
// environment, and whose [processes.<name>] tables become node.Definitions.
//
// It owns the configuration keys, their defaults, their environment variable
// names and the checks that refuse a bad configuration before the node
// starts. It does not start anything: cmd/node hands the result to the node
// and bus packages. Each [processes.<name>.events.<event>] table becomes
// the event's JSON Schema as JSON; it is compiled here (with package schema)
// only so that a bad schema is refused with its key, and the node compiles
// it again when the definition is registered.
//
// # Keys
//
// config.example.toml at the repository root documents every key with its
// default. Every key, by table (a test keeps this list and that file
// complete):
//
//	[node]  id, data_dir, socket_dir, transport, log_level, log_format,
//	        max_line_bytes, stats_interval, retention, retention_max,
//	        shutdown, heartbeat_interval, remote_definitions, max_processes,
//	        log_max_bytes, log_max_files, handshake_timeout
//	[node.labels]  key = "value" pairs, matched by spawn placement
//	[nats]  url, listen, jetstream, durable, stream_max_age,
//	        stream_max_bytes, stream_replicas, stats_store, publish_buffer,
//	        max_payload, insecure, creds, nkey, user, password, token, monitor
//	[[nats.users]]  user, password, nkey, role (the embedded server's users)
//	[nats.tls]      cert, key, ca, verify
//	[nats.cluster]  name, listen, routes, user, password (the embedded server joins a NATS cluster)
//	[nats.cluster.tls]  cert, key, ca, verify
//	[nats.leaf]     remotes, listen, user, password (the embedded server as a leaf node, or a hub)
//	[nats.leaf.tls]     cert, key, ca, verify
//	[nats.websocket]    listen (the embedded server's WebSocket clients, for browser apps)
//	[nats.websocket.tls]  cert, key
//	[http]  listen, insecure (the node's HTTP gateway: API, SSE, metrics, dashboard)
//	[[http.tokens]]  token, role (who may use the gateway: viewer or operator)
//	[http.tls]      cert, key
//	[processes.<name>]  command, args, cwd, env, heartbeat_timeout,
//	                    auto_restart, max_restarts, restart, restart_delay,
//	                    restart_delay_max, restart_reset_after, stop_signal,
//	                    stop_timeout, stats_interval, spawn_env, spawn_cwd,
//	                    user, group, inherit_env, max_instances, instances,
//	                    log_max_bytes, log_max_files, limits, events
//	[processes.<name>.limits]  max_runtime, max_memory_mb, max_cpu_percent
//	[processes.<name>.events.<event>]  a JSON Schema written as a TOML table
//
// Keys are case-sensitive and written in snake_case. A key the package does
// not know is refused, so a typo never silently falls back to a default.
//
// # Environment
//
// Every [node], [nats] and [http] key can be set from the environment as
// CORRAL_ followed by the upper-cased key with "." turned into "_" (see
// EnvName): CORRAL_NODE_ID, CORRAL_NODE_DATA_DIR, CORRAL_NATS_URL,
// CORRAL_HTTP_LISTEN and so on; not the arrays of tables ([[nats.users]],
// [[http.tokens]]). The
// environment wins over the file, which wins over the defaults. As with
// viper, a variable that is set but empty counts as unset. Process
// definitions cannot be set from the environment.
//
// # Paths
//
// Relative paths (data_dir, socket_dir) are resolved against the working
// directory of corrald, not against the directory of the configuration
// file, and Config holds them absolute. data_dir defaults to ./.corral.
// A process's command and cwd are passed to the node as written.
package config
