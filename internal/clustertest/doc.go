// Package clustertest runs cioq end to end (producer → asynq → worker → the
// fake Track API) over a Redis Cluster and over Redis Sentinel with a
// failover, on redis-server processes the tests start themselves
// (internal/redistest.StartCluster and StartSentinel). It holds only tests;
// where the machine cannot start the nodes they skip and say why, and
// docs/scaling.md gives the manual procedure.
package clustertest
