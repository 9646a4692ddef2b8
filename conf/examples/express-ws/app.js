// SPDX-License-Identifier: Apache-2.0
// The smallest Express app with express-ws: a page over HTTP and a WebSocket echo.
//   npm install && node app.js            (listens on 127.0.0.1:8000, or PORT)
'use strict';

const express = require('express');
const expressWs = require('express-ws');

const app = express();
expressWs(app);

app.get('/', (req, res) => res.type('text/plain').send('hello from Express behind Portico\n'));

app.ws('/ws/echo', (ws) => {
  ws.on('error', () => {});               // a bad frame must not end the process
  ws.on('message', (data) => ws.send(data));  // express-ws 5 (ws 7): text comes as a string
});

const port = Number(process.env.PORT || 8000);
const server = app.listen(port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
