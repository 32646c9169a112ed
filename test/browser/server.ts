/**
 * A static file server for the browser suite and the example page, bound to
 * 127.0.0.1 only, serving a few folders of the repository (read-only).
 *
 * As a script, `npx ts-node --transpile-only test/browser/server.ts` serves
 * until interrupted and prints the example page's URL (build first:
 * `npm run build:browser`).
 */
import * as fs from 'fs';
import * as http from 'http';
import * as path from 'path';
import type {AddressInfo} from 'net';

const ROOT = path.resolve(__dirname, '..', '..');

/** The only URL prefixes served (repository-relative folders). */
const SERVED = ['/dist/', '/examples/browser/', '/test/browser/', '/test/fixtures/', '/bench/browser/',
                '/node_modules/@tensorflow/'];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.map': 'application/json',
  '.wasm': 'application/wasm', '.png': 'image/png', '.svg': 'image/svg+xml',
};

export interface StaticServer {
  origin: string;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1 (port 0: any free port). */
export function serve(port = 0): Promise<StaticServer> {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    let rel = decodeURIComponent(url.pathname);
    if (rel === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.resolve(ROOT, '.' + rel);
    const allowed = (req.method === 'GET' || req.method === 'HEAD') && file.startsWith(ROOT + path.sep) &&
                    SERVED.some(p => rel.startsWith(p)) && !rel.includes('..');
    if (!allowed) {
      res.writeHead(403).end('forbidden');
      return;
    }
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) {
        res.writeHead(404).end('not found');
        return;
      }
      res.writeHead(200, {
        'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
        'Content-Length': st.size,
        'Cache-Control': 'no-store',
      });
      if (req.method === 'HEAD') res.end();
      else fs.createReadStream(file).pipe(res);
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const {port: p} = server.address() as AddressInfo;
      resolve({
        origin: `http://127.0.0.1:${p}`,
        close: () => new Promise<void>(done => {
          server.closeAllConnections?.();
          server.close(() => done());
        }),
      });
    });
  });
}

if (require.main === module) {
  serve(Number(process.env.PORT ?? 8080)).then(s => {
    // eslint-disable-next-line no-console
    console.log(`serving on ${s.origin}: example at ${s.origin}/examples/browser/ (Ctrl-C to stop)`);
  });
}
