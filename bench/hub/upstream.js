// A deliberately fast upstream for the proxy benchmark (bench/hub/bench_proxy.py): every
// GET gets the same small JSON body (the size of jupyter-server's /api/status answer), so
// a proxy in front of it is measured near its own ceiling rather than jupyter-server's.
//   node upstream.js PORT            or, as a hub's server command, with the port taken
//   node upstream.js                 from JUPYTERHUB_SERVICE_URL (as jupyterhub-singleuser does)
'use strict';
const http = require('http');
let port = process.argv[2];
if (!port && process.env.JUPYTERHUB_SERVICE_URL) port = new URL(process.env.JUPYTERHUB_SERVICE_URL).port;
const body = JSON.stringify({started: new Date().toISOString(), last_activity: new Date().toISOString(),
                             connections: 0, kernels: 0, pad: 'x'.repeat(40)});
http.createServer((req, res) => {
  req.resume();
  res.writeHead(200, {'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body)});
  res.end(body);
}).listen(Number(port), '127.0.0.1');
