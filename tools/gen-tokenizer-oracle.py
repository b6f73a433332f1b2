#!/usr/bin/env python3
"""Writes tests/fixtures/tokenizers/hf_oracle.jsonl: what HF `tokenizers` / `transformers` compute for a seeded random
corpus, so that afd's tokenizer is checked far beyond the 31 shared cases. Run where transformers is installed
(the GPU machine), from the repository root, after tools/fetch-tokenizers.sh:

    python3 tools/gen-tokenizer-oracle.py OUT_FILE

One JSON object per line, "kind" says which:
  encode:  {tok, text, ids, ids_special}              real tokenizers (deepseek_v3, qwen3, pystdlib)
  decode:  {tok, ids, text, text_skip}                 decode(ids, skip_special_tokens=False/True)
  variant_def: {variant, patch}                        pystdlib's tokenizer.json with `patch` applied (top-level keys
                                                       replaced, "model" keys merged, "added_tokens" appended)
  variant: {variant, text, ids, ids_special}           encode with that variant
  chat:    {tok, template, messages, add_generation_prompt, rendered | error}
"""
import json
import random
import sys

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer

SEED = 20261127
DIRS = {"deepseek_v3": "tests/data/tokenizers/deepseek_v3", "qwen3": "tests/data/tokenizers/qwen3",
        "pystdlib": "models/pystdlib-moe"}
RANGES = [(0x20, 0x7E)] * 6 + [
    (0x09, 0x0D), (0x80, 0xFF), (0x100, 0x24F), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF), (0x590, 0x5FF),
    (0x600, 0x6FF), (0x900, 0x97F), (0xE00, 0xE7F), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x2000, 0x206F),
    (0x20A0, 0x20CF), (0x2100, 0x218F), (0x3000, 0x303F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3),
    (0xF900, 0xFAFF), (0xFF00, 0xFFEF), (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0x0, 0x10FFFF)]
EXTRA = ["\u0085", "\u180e", "\u00a0", "\u3000", "\u200d", "\ufeff", "\u2028", "\r\n", "  ", "\t\t", "'s", "'LL",
         "'Re", "123456", "\u0663\u0664\u0665", "\u00b2", "\u216b", "e\u0301", "\u1100\u1161\u11a8", "...", "!!!",
         "    ", "\n\n\n", " \n ", "::", "->", "Hello", "WORLD", "über", "naïve", "ﬁ", "①", "…", "\u2126", "\u212b"]
WORDS = ["the", " the", " quick", " brown", " fox", " def", " return", " self", "(", ")", ":", " import", " os",
         "\n    ", " 1999", " 3.14", " don't", " I'm", " 中文", " 日本語", " 한국어", " Привет", " مرحبا", " 😀"]


def rand_text(rng, n, added):
    parts = []
    for _ in range(rng.randint(0, n)):
        r = rng.random()
        if r < 0.08:
            parts.append(rng.choice(EXTRA))
        elif r < 0.28:
            parts.append(rng.choice(WORDS))
        elif r < 0.31 and added:
            parts.append(rng.choice(added))
        else:
            while True:
                lo, hi = rng.choice(RANGES)
                cp = rng.randint(lo, hi)
                if not 0xD800 <= cp <= 0xDFFF:
                    break
            parts.append(chr(cp))
    return "".join(parts)


def emit(out, **kw):
    out.write(json.dumps(kw, ensure_ascii=False, separators=(",", ":")) + "\n")


def real_tokenizers(out, rng):
    eval_txt = open("models/pystdlib-moe/eval.txt", encoding="utf-8").read()
    for name, d in DIRS.items():
        raw = Tokenizer.from_file(d + "/tokenizer.json")
        hf = AutoTokenizer.from_pretrained(d)
        added = [t.content for t in raw.get_added_tokens_decoder().values()][:40]
        texts = [rand_text(rng, 60, added) for _ in range(500)]
        for _ in range(60):
            a = rng.randrange(len(eval_txt) - 2000)
            texts.append(eval_txt[a:a + rng.randint(1, 1500)])
        for t in texts:
            emit(out, kind="encode", tok=name, text=t, ids=raw.encode(t, add_special_tokens=False).ids,
                 ids_special=hf(t, add_special_tokens=True)["input_ids"])
        vocab = raw.get_vocab_size(with_added_tokens=True)
        for _ in range(150):
            ids = [rng.randrange(vocab) if rng.random() < 0.5 else rng.randrange(100, 300)
                   for _ in range(rng.randint(0, 25))]
            emit(out, kind="decode", tok=name, ids=ids, text=raw.decode(ids, skip_special_tokens=False),
                 text_skip=raw.decode(ids, skip_special_tokens=True))


def bl(prefix=False, regex=True):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True, "use_regex": regex}


def split(pattern, behavior, invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern}, "behavior": behavior,
            "invert": invert}


VARIANTS = {
    "split_behaviors": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        split(r"\s+", "MergedWithPrevious"), split("[0-9]", "MergedWithNext"), split("ab", "Contiguous", literal=True),
        split("[.,;]", "Removed"), bl(prefix=True)]}},
    "invert_digits": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, split(r"\p{L}+", "Isolated", invert=True),
        split("x+", "MergedWithPrevious", invert=True), bl(regex=False)]}},
    "whitespace_split_punct": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"}, {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "Digits", "individual_digits": False}, bl(regex=False)]}},
    "whitespace": {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Whitespace"}, bl(regex=False)]}},
    "normalizers": {"normalizer": {"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Replace", "pattern": {"String": "  "}, "content": " "},
        {"type": "Replace", "pattern": {"Regex": "[0-9]+"}, "content": "#"},
        {"type": "Strip", "strip_left": True, "strip_right": True}]}, "pre_tokenizer": bl(prefix=True)},
    "nfd_prepend": {"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFD"},
                                                                        {"type": "Prepend", "prepend": "_"}]}},
    # Ids as HF assigns them: an added token already in the vocabulary ("word") keeps its vocabulary id, the others
    # are numbered from the vocabulary size in order.
    "added_flags": {
        "normalizer": {"type": "Lowercase"},
        "added_tokens": [
            {"id": 4096, "content": "<mask>", "single_word": False, "lstrip": True, "rstrip": False,
             "normalized": False, "special": True},
            {"id": 4097, "content": "[end]", "single_word": False, "lstrip": False, "rstrip": True,
             "normalized": False, "special": False},
            {"id": 1481, "content": "word", "single_word": True, "lstrip": False, "rstrip": False,
             "normalized": False, "special": False},
            {"id": 4098, "content": "hello", "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": True, "special": False},
            {"id": 4099, "content": "<sp>", "single_word": False, "lstrip": True, "rstrip": True,
             "normalized": False, "special": True}],
        "post_processor": {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "<|eos|>", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [0], "tokens": ["<|bos|>"]},
                                              "<|eos|>": {"id": "<|eos|>", "ids": [1], "tokens": ["<|eos|>"]}}}},
    "ignore_merges": {"model": {"ignore_merges": True}},
    "roberta_post": {"post_processor": {"type": "RobertaProcessing", "sep": ["<|eos|>", 1], "cls": ["<|bos|>", 0],
                                        "trim_offsets": True, "add_prefix_space": False}},
}
VARIANT_EXTRA = ["<mask>", " <mask>", "[end]  x", "word", " word ", "words", "HELLO", "Hello", "<sp>", "  <sp>  ",
                 "ab", "aab", "abab", "x1y2", "xx", "..", "1,2;3", "ÅNGSTRÖM", "ﬁ", "Ǆ"]


def variants(out, rng):
    base = json.load(open("models/pystdlib-moe/tokenizer.json", encoding="utf-8"))
    for name, patch in VARIANTS.items():
        j = json.loads(json.dumps(base))
        for k, v in patch.items():
            if k == "model":
                j["model"].update(v)
            elif k == "added_tokens":
                j["added_tokens"] += v
            else:
                j[k] = v
        tok = Tokenizer.from_str(json.dumps(j))
        emit(out, kind="variant_def", variant=name, patch=patch)
        for _ in range(150):
            t = rand_text(rng, 30, VARIANT_EXTRA)
            emit(out, kind="variant", variant=name, text=t,
                 ids=tok.encode(t, add_special_tokens=False).ids, ids_special=tok.encode(t).ids)


DS_V3 = None  # read from the DeepSeek tokenizer_config.json
TEMPLATES = {
    "deepseek-v2": "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
                   "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ 'User: ' + "
                   "message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}{{ 'Assistant: ' + "
                   "message['content'] + eos_token }}{% elif message['role'] == 'system' %}{{ message['content'] + "
                   "'\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
    "mistral": "{%- if messages[0]['role'] == 'system' %}\n    {%- set system_message = messages[0]['content'] %}\n"
               "    {%- set loop_messages = messages[1:] %}\n{%- else %}\n    {%- set loop_messages = messages %}\n"
               "{%- endif %}\n\n{{- bos_token }}\n{%- for message in loop_messages %}\n"
               "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
               "        {{- raise_exception('After the optional system message, conversation roles must alternate "
               "user/assistant/user/assistant/...') }}\n    {%- endif %}\n    {%- if message['role'] == 'user' %}\n"
               "        {%- if loop.first and system_message is defined %}\n"
               "            {{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}\n"
               "        {%- else %}\n            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
               "        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n"
               "        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n"
               "        {{- raise_exception('Only user and assistant roles are supported, with the exception of an "
               "initial optional system message!') }}\n    {%- endif %}\n{%- endfor %}\n",
    "mistral-legacy": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 "
                      "% 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant"
                      "/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' "
                      "[/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else "
                      "%}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    "llama2": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
              "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
              "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0)"
              " %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
              "{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + "
              "system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = "
              "message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + "
              "content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + "
              "' ' + eos_token }}{% endif %}{% endfor %}",
}
CHATS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}],
    [{"role": "system", "content": "S1"}, {"role": "system", "content": "S2"}, {"role": "user", "content": "Q"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}],
    [{"role": "system", "content": "You are a helpful assistant"}, {"role": "user", "content": "Hello"},
     {"role": "assistant", "content": "Hi there"}, {"role": "user", "content": "Who are you"},
     {"role": "assistant", "content": "   I am an assistant   "}, {"role": "user", "content": "Another question"}],
    [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "<think>\nr1\n</think>\n\nA1"},
     {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "<think>\nr2\n</think>\n\nA2"}],
    [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "\n\nno think\n"}],
    [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "calling"},
     {"role": "tool", "content": "r1"}, {"role": "tool", "content": "r2"}],
    [{"role": "user", "content": "Q"}, {"role": "tool", "content": "r1"}, {"role": "assistant", "content": "A"},
     {"role": "user", "content": "<tool_response>x</tool_response>"}],
    [{"role": "user", "content": "  padded \n"}, {"role": "assistant", "content": " ok "},
     {"role": "user", "content": "中文 ✓"}],
    [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
     {"role": "system", "content": "late"}, {"role": "user", "content": "Q2"}],
]


def chats(out):
    ds = AutoTokenizer.from_pretrained(DIRS["deepseek_v3"])
    v3 = ds.chat_template
    r1 = v3.replace("{%- else %}{{'<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}",
                    "{%- else %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = "
                    "content.split('</think>')[-1] %}{% endif %}{{'<｜Assistant｜>' + content + "
                    "'<｜end▁of▁sentence｜>'}}")
    r1 = r1.replace("{{'<｜Assistant｜>'}}{% endif %}", "{{'<｜Assistant｜><think>\\n'}}{% endif %}")
    assert r1.count("split('</think>')") == 1 and "<think>" in r1
    jobs = [("deepseek_v3", "deepseek-v3", None), ("qwen3", "qwen3", None), ("deepseek_v3", "deepseek-r1", r1)]
    jobs += [("deepseek_v3", k, v) for k, v in TEMPLATES.items()]
    for tok_name, family, template in jobs:
        tok = ds if tok_name == "deepseek_v3" else AutoTokenizer.from_pretrained(DIRS[tok_name])
        for messages in CHATS:
            for gen in (True, False):
                rec = dict(kind="chat", tok=tok_name, family=family, messages=messages, add_generation_prompt=gen)
                try:
                    rec["rendered"] = tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                              add_generation_prompt=gen)
                except Exception as e:  # the template's raise_exception
                    rec["error"] = str(e)
                emit(out, **rec)


def main():
    rng = random.Random(SEED)
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        emit(out, kind="meta", tokenizers=tokenizers.__version__, transformers=transformers.__version__, seed=SEED)
        real_tokenizers(out, rng)
        variants(out, rng)
        chats(out)


if __name__ == "__main__":
    main()
