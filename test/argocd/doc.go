// Package argocd tests the Argo CD integration in config/argocd: the Lua
// health check runs here as Argo CD runs it (gopher-lua, no standard
// library, the live object as the global obj), against statuses written
// by hand and built from the API types, and is checked against kstatus so
// that Argo CD and kubectl wait/Flux read a mapping the same way.
package argocd
