package llmk_test

import (
	"errors"
	"fmt"
	"log"

	"llmk.dev/llmk"
)

func Example() {
	ctx, err := llmk.NewCPUContext()
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()

	// Two rows of four, normalized in place.
	data := []float32{1, 2, 3, 4, 5, 6, 7, 8}
	x, err := llmk.TensorFromFloat32(data, []int64{2, 4}, nil)
	if err != nil {
		log.Fatal(err)
	}
	weight, err := llmk.TensorFromFloat32([]float32{1, 1, 2, 2}, []int64{4}, nil)
	if err != nil {
		log.Fatal(err)
	}
	if err := llmk.RMSNorm(ctx, x, weight, 1e-6, x, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.4f\n", data)
	// Output: [0.3651 0.7303 2.1909 2.9212 0.7581 0.9097 2.1227 2.4259]
}

func ExampleError() {
	ctx, err := llmk.NewCPUContext()
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()

	x, _ := llmk.TensorFromFloat32(make([]float32, 8), []int64{2, 4}, nil)
	weight, _ := llmk.TensorFromFloat32(make([]float32, 3), []int64{3}, nil)
	y, _ := llmk.TensorFromFloat32(make([]float32, 8), []int64{2, 4}, nil)
	err = llmk.RMSNorm(ctx, x, weight, 1e-6, y, nil)

	var e *llmk.Error
	if errors.As(err, &e) {
		fmt.Println(e.Status)
		fmt.Println(e.Message)
	}
	fmt.Println(errors.Is(err, llmk.StatusShapeMismatch))
	// Output:
	// shape mismatch
	// rms_norm: weight has 3 elements, x rows have 4
	// true
}

func ExampleRope() {
	ctx, err := llmk.NewCPUContext()
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()

	// One token of a fused QKV buffer [tokens, q | k | v, headDim], one head each: q and k are
	// views into it, rotated in place; v is left alone.
	const tokens, headDim = 1, 4
	qkv := []float32{1, 0, 1, 0 /* q */, 0, 1, 0, 1 /* k */, 9, 9, 9, 9 /* v */}
	shape, strides := []int64{tokens, 1, headDim}, []int64{3 * headDim, headDim, 1}
	q, err := llmk.TensorFromFloat32(qkv, shape, strides)
	if err != nil {
		log.Fatal(err)
	}
	k, err := llmk.TensorFromFloat32(qkv[headDim:], shape, strides)
	if err != nil {
		log.Fatal(err)
	}
	positions, err := llmk.TensorFromInt32([]int32{1}, []int64{tokens}, nil)
	if err != nil {
		log.Fatal(err)
	}

	// GPT-J pairs (0, 1) and (2, 3), turned at position 1 by 1 and 10000^-0.5 radians.
	config := llmk.DefaultRopeConfig()
	config.Style = llmk.RopeGPTJ
	if err := llmk.Rope(ctx, config, positions, q, &k, nil, nil); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%.4f\n", qkv)
	// Output: [0.5403 0.8415 0.9999 0.0100 -0.8415 0.5403 -0.0100 0.9999 9.0000 9.0000 9.0000 9.0000]
}

func ExampleGatedMLP() {
	ctx, err := llmk.NewCPUContext()
	if err != nil {
		log.Fatal(err)
	}
	defer ctx.Close()

	// SwiGLU over one token, d_model 2, d_ff 2, with vLLM's fused [gate; up] weight: w_gate is its
	// first d_ff rows, w_up the next d_ff (nn.Linear weights, [out_features, in_features]).
	const tokens, dModel, dFF = 1, 2, 2
	gateUp := []float32{1, 0, 0, 1 /* gate */, 2, 0, 0, 2 /* up */}
	x, _ := llmk.TensorFromFloat32([]float32{1, -1}, []int64{tokens, dModel}, nil)
	wGate, _ := llmk.TensorFromFloat32(gateUp[:dFF*dModel], []int64{dFF, dModel}, nil)
	wUp, _ := llmk.TensorFromFloat32(gateUp[dFF*dModel:], []int64{dFF, dModel}, nil)
	wDown, _ := llmk.TensorFromFloat32([]float32{1, 1, 0, 1}, []int64{dModel, dFF}, nil)
	out := make([]float32, tokens*dModel)
	y, _ := llmk.TensorFromFloat32(out, []int64{tokens, dModel}, nil)

	// The intermediate [gate | up] lives in a workspace of the size the library asks for.
	bytes, err := llmk.GatedMLPWorkspaceSize(ctx, x, wGate)
	if err != nil {
		log.Fatal(err)
	}
	scratch, err := llmk.NewDeviceBuffer(ctx, bytes)
	if err != nil {
		log.Fatal(err)
	}
	defer scratch.Free()

	err = llmk.GatedMLP(ctx, llmk.DefaultMLPConfig(), x, wGate, wUp, wDown, llmk.ActivationSiLU,
		scratch.Workspace(), y, nil)
	if err != nil {
		log.Fatal(err)
	}
	// h = silu([1, -1]) * [2, -2] = [1.4621, 0.5379]; y = [h0 + h1, h1].
	fmt.Printf("%.4f\n", out)
	// Output: [2.0000 0.5379]
}
