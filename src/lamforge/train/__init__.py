"""train stage: the four training phases of a Large Action Model, CPU-first on the Hugging Face stack.

Where each concept lives:

- base_model: which model to start from (path, hub id, the offline SmolLM2 GGUF default, the tiny test model)
- formatting: (messages, target) -> token ids and labels; `build_prompt_ids` is shared with the agent runtime
- data: reading JSONL records, the held-out split by task
- batching: micro-batches with a shared prompt prefix, logits only at target positions
- config: typed configs per phase and the tiny / quick / full presets
- runtime: device, precision, LoRA, optimizer, schedule, the fields a resume must match, progress bar
- loop: the one training loop of SFT, reward model and PPO on accelerate, with its resume state
- distributed: the accelerator per config (DDP, FSDP, ZeRO-3), rows per process, 4/8-bit loading, recomputation
- plan: `lamforge train plan`, memory per GPU of each phase before anything is loaded
- sft: phases 1 (task -> plan), 2 (state -> action) and 3 (self-boosting union)
- selfboost: phase-3 data: union with LAM2's successful explorations, recovered-task count
- reward: the reward model (scalar head + LoRA, MSE on +1/-1, sigmoid scores), accuracy and AUC
- ppo_offline: phase 4, offline PPO with a KL penalty to LAM3
- checkpoint: model folders, model cards, `load_policy`
- evaluate: validation loss and greedy exact-match accuracy
- bench: training speed and memory against a naive baseline
- cli: `lamforge train --phase 1|2|3|rm|4 --config FILE`, `lamforge train bench`, `lamforge train plan`
"""
