// Package ratesim replays a fleet of workers against a Customer.io whose
// real limit changes over time, on a virtual clock, to show how the
// ratelimit package's adaptive rate follows it: `cioq sim rate`.
//
// It runs the real limiter (its Lua scripts, on an embedded miniredis) with
// Config.Now set to the virtual clock; what it models is the rest: Replicas
// processes with Slots requests in flight each, every request answered
// after Latency by a token bucket of the real limit (burst one second's
// worth, as the fake Track API), and a backlog that never runs dry.
//
//	m := ratesim.Storm(80, 16, 15*time.Second) // 80 req/s budget, limit ÷16 for 15 s
//	res, err := ratesim.Run(ctx, m)
//	fmt.Println(res.Summary.StormShare429)
package ratesim
