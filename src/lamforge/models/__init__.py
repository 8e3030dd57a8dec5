"""Language models as every stage uses them: where a base model comes from (base_model), how a model and its
tokenizer load for training or inference (loading), the one way chat messages become token ids (formatting),
which model folders are finished (checkpoints), and the MiniLM sentence embedder (embeddings).

It sits below env, tasks, agent, data, train and eval, so training and the agent runtime share it without one
importing the other."""
