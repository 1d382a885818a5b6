// A small client for qemu's machine protocol (QMP) over its unix socket: what the appliance test
// uses as the patient's finger (absolute pointer events on the USB tablet) and as a camera
// pointed at the kiosk's panel (screendump).

import fs from 'node:fs';
import net from 'node:net';

export class Qmp {
  /**
   * Connects to the socket at `path` and negotiates capabilities. Refused or silent sockets (a
   * qemu still starting) are tried again until `timeoutMs`; then it fails naming the last error.
   */
  static async connect(path, timeoutMs = 60000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await Qmp.attempt(path);
      } catch (e) {
        if (Date.now() > deadline) throw new Error(`QMP at ${path}: ${e.message}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** One connection attempt; gives up after 10 s without qemu's greeting. */
  static async attempt(path) {
    const sock = net.connect(path);
    let timer;
    const silent = new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error('no greeting within 10 s')), 10000);
    });
    try {
      await Promise.race([silent, new Promise((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); })]);
      const qmp = new Qmp(sock);
      await Promise.race([silent, qmp.greeting]);
      await Promise.race([silent, qmp.execute('qmp_capabilities')]);
      return qmp;
    } catch (e) {
      sock.destroy();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  constructor(sock) {
    this.sock = sock;
    this.pending = [];
    this.events = [];
    let buffered = '';
    let greeted;
    this.greeting = new Promise((resolve) => { greeted = resolve; });
    sock.setEncoding('utf8');
    sock.on('data', (chunk) => {
      buffered += chunk;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line);
        if (msg.QMP) greeted(msg);
        else if (msg.event) this.events.push(msg);
        else this.pending.shift()?.(msg);
      }
    });
  }

  /** Runs a command; resolves with its `return`, rejects with qemu's error. */
  execute(command, args) {
    return new Promise((resolve, reject) => {
      this.pending.push((msg) => (msg.error ? reject(new Error(`${command}: ${msg.error.desc}`)) : resolve(msg.return)));
      this.sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  /** A tap at pixel (x, y) of a `width`×`height` screen, on the absolute pointer (the tablet). */
  async tap(x, y, width, height) {
    const abs = (axis, v, size) => ({ type: 'abs', data: { axis, value: Math.round((v * 0x7fff) / (size - 1)) } });
    await this.execute('input-send-event', { events: [abs('x', x, width), abs('y', y, height)] });
    await new Promise((r) => setTimeout(r, 100));
    await this.execute('input-send-event', { events: [{ type: 'btn', data: { down: true, button: 'left' } }] });
    await new Promise((r) => setTimeout(r, 150));
    await this.execute('input-send-event', { events: [{ type: 'btn', data: { down: false, button: 'left' } }] });
  }

  /** The screen as `{width, height, rgb}` (a PPM screendump, read back), and a PNG beside it. */
  async screen(ppmPath, pngPath) {
    await this.execute('screendump', { filename: ppmPath });
    if (pngPath) await this.execute('screendump', { filename: pngPath, format: 'png' });
    return readPpm(fs.readFileSync(ppmPath));
  }

  close() {
    this.sock.destroy();
  }
}

/** Parses a binary PPM (P6, maxval 255). */
export function readPpm(buf) {
  let pos = 0;
  const token = () => {
    while (/\s/.test(String.fromCharCode(buf[pos]))) pos++;
    if (buf[pos] === 0x23) { while (buf[pos] !== 0x0a) pos++; return token(); }
    const start = pos;
    while (!/\s/.test(String.fromCharCode(buf[pos]))) pos++;
    return buf.subarray(start, pos).toString('ascii');
  };
  if (token() !== 'P6') throw new Error('not a binary PPM');
  const width = Number(token()); const height = Number(token()); const max = Number(token());
  if (max !== 255) throw new Error(`PPM maxval ${max}`);
  return { width, height, rgb: buf.subarray(pos + 1, pos + 1 + width * height * 3) };
}

/** Distinct colours and the spread of brightness in a rectangle of a screen (a uniform area has 1). */
export function region({ width, rgb }, x0, y0, x1, y1) {
  const colours = new Set();
  let min = 255; let max = 0;
  for (let y = y0; y < y1; y += 2) {
    for (let x = x0; x < x1; x += 2) {
      const i = (y * width + x) * 3;
      colours.add((rgb[i] << 16) | (rgb[i + 1] << 8) | rgb[i + 2]);
      const luma = (rgb[i] * 299 + rgb[i + 1] * 587 + rgb[i + 2] * 114) / 1000;
      min = Math.min(min, luma); max = Math.max(max, luma);
    }
  }
  return { colours: colours.size, spread: max - min };
}
