module llmk.dev/llmk

go 1.19
