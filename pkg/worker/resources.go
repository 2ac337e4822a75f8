package worker

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	schedulerv1 "github.com/gyreml/gyre/pkg/pb/gyre/scheduler/v1"
)

// DetectGPUs asks nvidia-smi for the machine's GPUs; none when it is absent.
func DetectGPUs(ctx context.Context) []*schedulerv1.GPU {
	path, err := exec.LookPath("nvidia-smi")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--query-gpu=index,name,memory.total", "--format=csv,noheader,nounits").Output()
	if err != nil {
		return nil
	}
	return parseNvidiaSMI(string(out))
}

// parseNvidiaSMI reads lines like "0, NVIDIA H100 80GB HBM3, 81559".
func parseNvidiaSMI(out string) []*schedulerv1.GPU {
	var gpus []*schedulerv1.GPU
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		parts := strings.Split(line, ",")
		if len(parts) != 3 {
			continue
		}
		idx, err1 := strconv.Atoi(strings.TrimSpace(parts[0]))
		mem, err2 := strconv.ParseInt(strings.TrimSpace(parts[2]), 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		gpus = append(gpus, &schedulerv1.GPU{Index: int32(idx), Model: strings.TrimSpace(parts[1]), MemoryMib: mem})
	}
	return gpus
}

// detectMemoryMiB reads MemTotal from /proc/meminfo (0 when unknown).
func detectMemoryMiB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb / 1024
		}
	}
	return 0
}
