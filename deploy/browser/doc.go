// Package browser checks, in a real headless Chromium, what an operator sees
// in the asynqmon UI the worker embeds under /monitoring/: with tasks queued,
// the page lists the critical and default queues with their sizes.
//
// It is its own Go module (github.com/cioq/cioq/deploy/browser) so chromedp
// never enters cioq's go.mod. It needs Debian's chromium at /usr/bin/chromium
// (or CIOQ_CHROMIUM) and a Redis (CIOQ_TEST_REDIS_ADDR, as `make test` sets);
// without Chromium it skips and says why. `make browser-test` installs
// Chromium with apt-get first.
package browser
