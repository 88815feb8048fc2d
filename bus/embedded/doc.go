// Package embedded starts the nats-server a node embeds: on its own, as a
// member of a NATS cluster (with clustered JetStream), or as a leaf node
// or hub; and connects the node to it (Server.Connect). It is the only package
// of Corral's that links nats-server.
package embedded
