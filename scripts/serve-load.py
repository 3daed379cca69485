#!/usr/bin/env python3
"""Load test and benchmark client for an OpenAI-compatible server (entmin serve or
llama-server): C concurrent clients each send R streamed chat requests (greedy,
GSM8K-style questions, T new tokens) on loopback.

Checks (exit 1 on failure): every request is answered or refused with 429, and an
answered one's text equals that question's answer when it was asked alone first (so
nothing is lost or mixed up between concurrent requests); with --pid, the server's
resident memory after the run is within --rss-slack-mb of its level after the warm-up.
Reports aggregate tokens/s, time to first token and per-token latency (p50/p99) as one
JSON line.

  scripts/serve-load.py --url http://127.0.0.1:8080 --clients 16 --requests 4 --pid PID
"""

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did she earn?",
    "Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. Her parents decided to give her $15 for that purpose, and her grandparents twice as much as her parents. How much more money does Betty need to buy the wallet?",
    "Julie is reading a 120-page book. Yesterday, she was able to read 12 pages and today, she read twice as many pages as yesterday. If she wants to read half of the remaining pages tomorrow, how many pages should she read?",
    "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?",
    "Mark has a garden with flowers. He planted plants of three different colors in it. Ten of them are yellow, and there are 80% more of those in purple. There are only 25% as many green flowers as there are yellow and purple flowers. How many flowers does Mark have in his garden?",
    "Albert is wondering how much pizza he can eat in one day. He buys 2 large pizzas and 2 small pizzas. A large pizza has 16 slices and a small pizza has 8 slices. If he eats it all, how many pieces does he eat that day?",
    "Ken created a care package to send to his brother. He placed a box on a scale, and then he poured into the box enough jelly beans to bring the weight to 2 pounds. Then, he added enough brownies to cause the weight to triple. How much does the box weigh now?",
    "Alexis is applying for a new job and bought a new set of business clothes to wear to the interview. She went to a department store with a budget of $200 and spent $30 on a button-up shirt. How much money does she have left?",
    "Tina makes $18.00 an hour. If she works more than 8 hours per shift, she is eligible for overtime. How much money does she make if she works 10 hours every day for 5 days?",
    "A deep-sea monster rises from the waters once every hundred years to feast on a ship. Over three hundred years, it has consumed 847 people. How many people were on the ship the monster ate in the first hundred years?",
    "Tobias is buying a new pair of shoes that costs $95. He has been saving up his money each month for the past three months. He gets a $5 allowance a month. How much money does he have?",
    "Randy has 60 mango trees on his farm. He also has 5 less than half as many coconut trees as mango trees. How many trees does Randy have in all on his farm?",
    "Jasper will serve charcuterie at his dinner party. He buys 2 pounds of cheddar cheese for $10, a pound of cream cheese that cost half the price of the cheddar cheese. How much does he spend?",
    "Joy can read 8 pages of a book in 20 minutes. How many hours will it take her to read 120 pages?",
    "James creates a media empire. He creates a movie for $2000. Each DVD cost $6 to make. How much does he spend on 500 DVDs?",
]


def ask(url, question, max_tokens, model, key, extra):
    u = urllib.parse.urlparse(url)
    body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "stream_options": {"include_usage": True}, **extra}
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    t0 = time.perf_counter()
    c.request("POST", "/v1/chat/completions", json.dumps(body), headers)
    r = c.getresponse()
    if r.status != 200:
        text = r.read().decode()
        c.close()
        return {"status": r.status, "body": text[:300]}
    text, stamps, tokens = [], [], None
    for line in r:
        line = line.strip()
        if not line.startswith(b"data: "):
            continue
        data = line[6:]
        if data == b"[DONE]":
            break
        chunk = json.loads(data)
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
        for ch in chunk.get("choices", []):
            piece = (ch.get("delta") or {}).get("content")
            if piece:
                text.append(piece)
                stamps.append(time.perf_counter())
    c.close()
    return {"status": 200, "text": "".join(text), "start": t0, "stamps": stamps,
            "tokens": tokens if tokens is not None else len(stamps), "end": time.perf_counter()}


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--model", default="default")
    ap.add_argument("--key")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=2, help="per client")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--method", help="entmin's method extension (em-inf, plain, …)")
    ap.add_argument("--no-check", action="store_true", help="skip the alone-first answers (a pure benchmark)")
    ap.add_argument("--pid", type=int, help="the server's process, for its memory")
    ap.add_argument("--rss-slack-mb", type=float, default=64)
    ap.add_argument("--time-limit", type=float, default=1800)
    a = ap.parse_args()
    extra = {"method": a.method} if a.method else {}
    qs = QUESTIONS[: max(1, min(len(QUESTIONS), a.clients * a.requests))]
    expected = {}
    if not a.no_check:
        for q in qs:
            r = ask(a.url, q, a.max_tokens, a.model, a.key, extra)
            assert r["status"] == 200, r
            expected[q] = r["text"]
    else:
        # Warm up on a question outside the mix, so no server starts with it cached.
        ask(a.url, "Say hello.", 4, a.model, a.key, extra)
    rss0 = rss_mb(a.pid) if a.pid else None
    results = []
    lock = threading.Lock()
    deadline = time.time() + a.time_limit

    def client(c):
        for k in range(a.requests):
            if time.time() > deadline:
                return
            q = qs[(c * a.requests + k) % len(qs)]
            r = ask(a.url, q, a.max_tokens, a.model, a.key, extra)
            r["question"] = q
            with lock:
                results.append(r)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(a.clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    wall = time.perf_counter() - t0
    rss1 = rss_mb(a.pid) if a.pid else None
    answered = [r for r in results if r["status"] == 200]
    refused = [r for r in results if r["status"] == 429]
    other = [r for r in results if r["status"] not in (200, 429)]
    wrong = [r for r in answered if not a.no_check and r["text"] != expected[r["question"]]]
    ttft = [r["stamps"][0] - r["start"] for r in answered if r["stamps"]]
    gaps = [b - a_ for r in answered for a_, b in zip(r["stamps"], r["stamps"][1:])]
    tokens = sum(r["tokens"] for r in answered)
    report = {
        "clients": a.clients, "requests": len(results), "answered": len(answered), "refused_429": len(refused),
        "other_status": len(other), "mismatched": len(wrong), "expected_requests": a.clients * a.requests,
        "max_tokens": a.max_tokens, "tokens": tokens, "wall_s": round(wall, 2),
        "aggregate_tok_s": round(tokens / wall, 2),
        "ttft_p50_s": pct(ttft, 50), "ttft_p99_s": pct(ttft, 99),
        "token_latency_p50_s": pct(gaps, 50), "token_latency_p99_s": pct(gaps, 99),
        "rss_mb_after_warmup": rss0, "rss_mb_after": rss1,
    }
    print(json.dumps(report))
    ok = not other and not wrong and len(results) == a.clients * a.requests
    if a.pid and rss0 is not None and rss1 - rss0 > a.rss_slack_mb:
        print(f"memory grew {rss1 - rss0:.1f} MB", file=sys.stderr)
        ok = False
    for r in other[:3] + wrong[:3]:
        print("problem:", json.dumps({k: v for k, v in r.items() if k != "stamps"})[:500], file=sys.stderr)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
