"""`entmin serve` against the real `openai` Python client (pinned in scripts/test.sh).

Run by em/tests/serve.rs, which passes ENTMIN_BIN (the entmin binary) and
ENTMIN_TINY_Q8 / ENTMIN_TINY_F32 (tiny random models with a byte vocabulary, written as
GGUF); SmolLM2 comes from the catalog cache. Each test class starts its own servers
on free loopback ports and stops them with SIGTERM.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest

import openai

BIN = os.environ["ENTMIN_BIN"]
SMOL = "smollm2-135m-instruct"


class Server:
    def __init__(self, model, *flags, key=None):
        self.key = key
        if key:
            flags = (*flags, "--api-key", key)
        self.proc = subprocess.Popen(
            [BIN, "serve", "-m", model, "--port", "0", "--device", "cpu", *flags],
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log = []
        self.addr = None
        for line in self.proc.stderr:
            self.log.append(line)
            m = re.search(r"listening on http://([0-9.]+:[0-9]+)", line)
            if m:
                self.addr = m.group(1)
                break
        assert self.addr, "no listening line:\n" + "".join(self.log)
        threading.Thread(target=lambda: self.log.extend(self.proc.stderr), daemon=True).start()
        deadline = time.time() + 120
        while self.get("/health")[0] != 200:
            assert time.time() < deadline and self.proc.poll() is None, "never ready:\n" + "".join(self.log)
            time.sleep(0.1)

    def client(self, key="none"):
        return openai.OpenAI(base_url=f"http://{self.addr}/v1", api_key=key, max_retries=0, timeout=300)

    def request(self, method, path, body=b"", headers=None):
        host, port = self.addr.split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=300)
        headers = dict(headers or {})
        if self.key:
            headers.setdefault("Authorization", f"Bearer {self.key}")
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        out = (r.status, r.read().decode(), dict(r.getheaders()))
        c.close()
        return out

    def get(self, path):
        try:
            return self.request("GET", path)
        except OSError:
            return (0, "", {})

    def metric(self, name):
        text = self.get("/metrics")[1]
        m = re.search(r"^" + re.escape(name) + r" ([0-9.e+]+)$", text, re.M)
        return float(m.group(1)) if m else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


def chat(client, text, **kw):
    return client.chat.completions.create(model=SMOL, messages=[{"role": "user", "content": text}], **kw)


class SmolLM2(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = Server(SMOL, "--max-batch", "8")
        cls.client = cls.server.client()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_chat_matches_the_command_line(self):
        r = chat(self.client, "What is 2+3?", max_tokens=12, temperature=0)
        cli = subprocess.run(
            [BIN, "generate", "-m", SMOL, "--device", "cpu", "--temperature", "0", "--max-new-tokens", "12",
             "What is 2+3?"],
            capture_output=True, text=True, check=True,
        )
        self.assertEqual(r.choices[0].message.content, cli.stdout.strip("\n"))
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertIn(r.choices[0].finish_reason, ("stop", "length"))
        self.assertGreater(r.usage.prompt_tokens, 5)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens)
        self.assertEqual(r.model_extra.get("object", r.object), "chat.completion")

    def test_streaming_gives_the_same_answer(self):
        whole = chat(self.client, "Name three colours.", max_tokens=20, temperature=0)
        chunks = list(chat(self.client, "Name three colours.", max_tokens=20, temperature=0, stream=True,
                           stream_options={"include_usage": True}))
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        self.assertEqual([c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason],
                         [whole.choices[0].finish_reason])
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, whole.usage.completion_tokens)
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)

    def test_logprobs_and_entropies(self):
        r = chat(self.client, "What is the capital of France?", max_tokens=10, temperature=0, logprobs=True,
                 top_logprobs=3)
        content = r.choices[0].logprobs.content
        self.assertGreater(len(content), 0)
        self.assertEqual("".join(t.token for t in content), r.choices[0].message.content)
        for t in content:
            top = t.top_logprobs
            self.assertEqual(len(top), 3)
            self.assertTrue(all(a.logprob >= b.logprob for a, b in zip(top, top[1:])))
            self.assertLessEqual(sum(2.718281828459045 ** a.logprob for a in top), 1 + 1e-5)
            # Greedy: the token is the best of the distribution it was drawn from.
            self.assertEqual(t.token, top[0].token)
            self.assertAlmostEqual(t.logprob, top[0].logprob, delta=1e-4)
            extra = t.model_extra
            self.assertGreaterEqual(extra["entropy"], 0)
            self.assertEqual(extra["sampled_entropy"], 0)
            em = extra["em_inf"]
            self.assertLessEqual(em["steps"], 5)
            if em["steps"] > 0:
                self.assertLess(em["entropy_after"], extra["entropy"])
        summary = r.choices[0].model_extra["entmin"]
        self.assertEqual(summary["method"], "em-inf")
        self.assertEqual(summary["em_inf_steps"], sum(t.model_extra["em_inf"]["steps"] for t in content))

    def test_method_and_em_inf_parameters(self):
        plain = chat(self.client, "Say hi.", max_tokens=6, temperature=0, logprobs=True,
                     extra_body={"method": "plain"})
        self.assertEqual(plain.choices[0].model_extra["entmin"]["em_inf_steps"], 0)
        self.assertTrue(all(t.model_extra["em_inf"] is None for t in plain.choices[0].logprobs.content))
        capped = chat(self.client, "Say hi.", max_tokens=6, temperature=0, logprobs=True,
                      extra_body={"method": "em-inf", "em_steps": 2, "em_threshold": 0.01})
        steps = [t.model_extra["em_inf"]["steps"] for t in capped.choices[0].logprobs.content]
        self.assertTrue(all(s <= 2 for s in steps) and any(s == 2 for s in steps), steps)
        sc = chat(self.client, "What is 3+4? Put the answer in \\boxed{}.", max_tokens=24, temperature=0.7, seed=3,
                  extra_body={"method": "self-consistency", "votes": 3})
        vote = sc.choices[0].model_extra["entmin"]["vote"]
        self.assertLessEqual(sum(t["votes"] for t in vote["tally"]), 3)
        self.assertIn(vote["chosen_sample"], range(3))

    def test_n_choices_are_seeded(self):
        kw = dict(max_tokens=8, temperature=1.0, seed=7, n=3)
        a = chat(self.client, "Write a word.", **kw)
        b = chat(self.client, "Write a word.", **kw)
        self.assertEqual([c.index for c in a.choices], [0, 1, 2])
        self.assertEqual([c.message.content for c in a.choices], [c.message.content for c in b.choices])
        self.assertGreaterEqual(a.usage.completion_tokens, 3)

    def test_stop_strings_streamed_and_not(self):
        kw = dict(model=SMOL, prompt="1, 2, 3, 4, 5,", max_tokens=16, temperature=0, stop=[" 8", "\n\n"])
        r = self.client.completions.create(**kw)
        self.assertEqual(r.choices[0].finish_reason, "stop", r.choices[0].text)
        self.assertNotIn(" 8", r.choices[0].text)
        self.assertTrue(r.choices[0].text.startswith(" 6, 7,"), r.choices[0].text)
        streamed = "".join(c.choices[0].text for c in self.client.completions.create(stream=True, **kw))
        self.assertEqual(streamed, r.choices[0].text)

    def test_completion_logprobs(self):
        r = self.client.completions.create(model=SMOL, prompt="The capital of France is", max_tokens=4,
                                           temperature=0, logprobs=2)
        lp = r.choices[0].logprobs
        self.assertEqual("".join(lp.tokens), r.choices[0].text)
        self.assertEqual(len(lp.token_logprobs), len(lp.tokens))
        self.assertEqual(lp.text_offset[0], 0)
        for tok, best in zip(lp.tokens, lp.top_logprobs):
            self.assertEqual(len(best), 2)
            self.assertEqual(max(best, key=best.get), tok)

    def test_concurrent_requests_match_their_answers_alone(self):
        questions = [f"What is {i} + {i + 2}?" for i in range(8)]
        alone = [chat(self.client, q, max_tokens=24, temperature=0, logprobs=True) for q in questions[:3]]
        seeded_alone = chat(self.client, questions[3], max_tokens=24, temperature=1.0, seed=11)
        rows_before = self.server.metric("entmin_batch_rows_sum")
        steps_before = self.server.metric("entmin_batch_rows_count")
        results = [None] * 8
        barrier = threading.Barrier(8)

        def ask(i):
            barrier.wait()
            if i == 3:
                results[i] = chat(self.client, questions[i], max_tokens=24, temperature=1.0, seed=11)
            else:
                results[i] = chat(self.client, questions[i], max_tokens=24, temperature=0, logprobs=True)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(8)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        for i in range(3):
            self.assertEqual(results[i].choices[0].message.content, alone[i].choices[0].message.content)
            self.assertEqual([t.logprob for t in results[i].choices[0].logprobs.content],
                             [t.logprob for t in alone[i].choices[0].logprobs.content])
        self.assertEqual(results[3].choices[0].message.content, seeded_alone.choices[0].message.content)
        # They did share steps: more rows than steps on average.
        rows = self.server.metric("entmin_batch_rows_sum") - rows_before
        steps = self.server.metric("entmin_batch_rows_count") - steps_before
        self.assertGreater(rows / steps, 2.0, (rows, steps))

    def test_bad_requests_are_400_with_an_openai_error(self):
        for kw in [dict(temperature=-0.5), dict(max_tokens=10**7), dict(top_p=0.0), dict(n=0),
                   dict(extra_body={"method": "beam"}), dict(extra_body={"temperature": "hot"}),
                   dict(extra_body={"frobnicate": 1})]:
            with self.assertRaises(openai.BadRequestError, msg=str(kw)) as e:
                chat(self.client, "hi", **kw)
            self.assertEqual(e.exception.status_code, 400)
            self.assertIn("message", e.exception.body)
        with self.assertRaises(openai.BadRequestError) as e:
            chat(self.client, "word " * 9000, max_tokens=4)
        self.assertIn("context", e.exception.message)
        for body in [b"{not json", b"[1, 2]", b'{"messages": "hi"}', b'{"messages": [{"role": 3}]}',
                     b"x" * (5 << 20)]:
            status, text, _ = self.server.request("POST", "/v1/chat/completions", body,
                                                  {"Content-Type": "application/json"})
            self.assertEqual(status, 400, text[:200])
            self.assertIn("message", json.loads(text)["error"])
        status, text, _ = self.server.request("GET", "/v1/nothing")
        self.assertEqual(status, 404)
        self.assertIsNone(self.server.proc.poll())

    def test_models_health_and_metrics(self):
        self.assertEqual([m.id for m in self.client.models.list()], [SMOL])
        self.assertEqual(self.server.get("/health")[0], 200)
        chat(self.client, "hi", max_tokens=2)
        text = self.server.get("/metrics")[1]
        for name in ["entmin_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"}",
                     "entmin_generated_tokens_total", "entmin_queue_depth 0", "entmin_batch_rows_bucket",
                     "entmin_time_to_first_token_seconds_bucket", "entmin_token_latency_seconds_count",
                     "entmin_em_inf_steps_total"]:
            self.assertIn(name, text)
        self.assertGreater(self.server.metric("entmin_generated_tokens_total"), 0)


class Limits(unittest.TestCase):
    """One place in the batch, one in the queue, and a key."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server(SMOL, "--max-batch", "1", "--queue", "1", key="sesame")
        cls.client = cls.server.client("sesame")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def long_stream(self):
        s = chat(self.client, "Tell me a long story.", max_tokens=2000, temperature=1.0, seed=1, stream=True)
        it = iter(s)
        next(it)
        return s, it

    def test_key_is_checked(self):
        with self.assertRaises(openai.AuthenticationError):
            chat(self.server.client("wrong"), "hi", max_tokens=2)
        self.assertEqual(self.server.request("GET", "/metrics", headers={"Authorization": "Bearer nope"})[0], 401)
        self.assertEqual(chat(self.client, "hi", max_tokens=2).choices[0].index, 0)

    def test_full_queue_is_429_and_a_disconnect_frees_the_slot(self):
        first, it = self.long_stream()
        self.addCleanup(first.close)
        next(it)
        second = {}

        def queued():
            second["r"] = chat(self.client, "Say yes.", max_tokens=3, temperature=0)

        waiting = threading.Thread(target=queued)
        waiting.start()
        deadline = time.time() + 30
        while self.server.metric("entmin_queue_depth") != 1:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        with self.assertRaises(openai.RateLimitError) as e:
            chat(self.client, "hi", max_tokens=2)
        self.assertEqual(e.exception.response.headers.get("retry-after"), "1")
        # The client of the long story goes away: its generation stops and the queued
        # request gets the place.
        first.close()
        waiting.join(timeout=60)
        self.assertFalse(waiting.is_alive())
        self.assertEqual(second["r"].choices[0].index, 0)
        self.assertLess(self.server.metric("entmin_generated_tokens_total"), 1000)
        self.assertEqual(self.server.metric("entmin_running_requests"), 0)


    def test_unstreamed_disconnect_cancels(self):
        before = self.server.metric("entmin_generated_tokens_total")
        host, port = self.server.addr.split(":")
        c = http.client.HTTPConnection(host, int(port), timeout=1)
        body = json.dumps({"messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 3000,
                           "temperature": 1.0, "seed": 2})
        c.request("POST", "/v1/chat/completions", body, {"Authorization": "Bearer sesame"})
        with self.assertRaises(TimeoutError):
            c.getresponse()
        c.close()
        deadline = time.time() + 30
        while self.server.metric("entmin_running_requests") != 0:
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        self.assertLess(self.server.metric("entmin_generated_tokens_total") - before, 1000)


class Shutdown(unittest.TestCase):
    def test_sigterm_lets_a_running_stream_finish(self):
        server = Server(SMOL)
        stream = chat(server.client(), "Count to ten.", max_tokens=40, temperature=0, stream=True)
        it = iter(stream)
        next(it)
        server.proc.send_signal(signal.SIGTERM)
        rest = list(it)
        self.assertTrue(rest[-1].choices[0].finish_reason in ("stop", "length"))
        self.assertEqual(server.proc.wait(timeout=60), 0, "".join(server.log))
        with self.assertRaises(openai.APIConnectionError):
            chat(server.client(), "hi", max_tokens=2)


class TinyModels(unittest.TestCase):
    """Random tiny models given token ids: the same tokens alone and in a full batch."""

    def check(self, path):
        server = Server(path, "--max-batch", "8")
        try:
            client = server.client()
            prompts = [[5, 17, 96], [42], [7, 7, 7, 7, 7, 1], [3, 9], [60, 61], [11] * 9, [90, 2, 2], [33]]

            def ask(p, seed):
                kw = dict(temperature=0) if seed is None else dict(temperature=1.0, seed=seed)
                r = client.completions.create(model="tiny", prompt=p, max_tokens=40, logprobs=0, **kw)
                self.assertEqual(r.choices[0].finish_reason, "length")
                self.assertEqual(r.usage.completion_tokens, 40)
                return r.choices[0].logprobs.token_logprobs, r.choices[0].text

            for seeds in [[None] * 8, list(range(100, 108))]:
                alone = [ask(p, s) for p, s in zip(prompts, seeds)]
                together = [None] * 8
                barrier = threading.Barrier(8)

                def run(i):
                    barrier.wait()
                    together[i] = ask(prompts[i], seeds[i])

                threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
                [t.start() for t in threads]
                [t.join() for t in threads]
                self.assertEqual(together, alone)
        finally:
            server.stop()

    def test_q8_0(self):
        self.check(os.environ["ENTMIN_TINY_Q8"])

    def test_f32(self):
        self.check(os.environ["ENTMIN_TINY_F32"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
