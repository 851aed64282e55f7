// Package alerts holds the operator's alert rules and its Grafana dashboard
// to Prometheus itself: every rule of config/components/prometheus is
// evaluated by Prometheus's own rule engine (the rules and promql packages,
// as promtool's rule unit tests use them) on series that must fire it and
// series that must not, and every PromQL query of the rules and of the
// dashboard is parsed by Prometheus's parser and may name only metrics the
// operator exports (testdata/exported-metrics.txt, which test/integration
// scrapes from the running operator).
//
// Its own module: Prometheus's dependencies stay out of the operator's.
package alerts
