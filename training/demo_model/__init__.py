"""The demo model's training tools: scenes, tokenizer, trainer and judges. Its weights ship in server/demo_model/weights."""
