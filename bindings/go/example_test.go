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
