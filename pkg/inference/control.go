package inference

import (
	"context"

	"github.com/gyreml/gyre/pkg/apierr"
	inferencev1 "github.com/gyreml/gyre/pkg/pb/gyre/inference/v1"
)

// Control is gyre.inference.v1.InferenceControlService over this server:
// how the deployer sets routes and reads their stats.
func (s *Server) Control() inferencev1.InferenceControlServiceServer { return &controlService{s: s} }

type controlService struct {
	inferencev1.UnimplementedInferenceControlServiceServer
	s *Server
}

func (c *controlService) SetRoute(ctx context.Context, req *inferencev1.SetRouteRequest) (*inferencev1.SetRouteResponse, error) {
	route, err := c.s.SetRoute(ctx, req.GetRoute(), req.GetResetStats())
	if err != nil {
		return nil, apierr.Status(ctx, c.s.log, err).Err()
	}
	return &inferencev1.SetRouteResponse{Route: route}, nil
}

func (c *controlService) DeleteRoute(ctx context.Context, req *inferencev1.DeleteRouteRequest) (*inferencev1.DeleteRouteResponse, error) {
	if err := c.s.DeleteRoute(ctx, req.GetEnvironment(), req.GetModel()); err != nil {
		return nil, apierr.Status(ctx, c.s.log, err).Err()
	}
	return &inferencev1.DeleteRouteResponse{}, nil
}

func (c *controlService) ListRoutes(context.Context, *inferencev1.ListRoutesRequest) (*inferencev1.ListRoutesResponse, error) {
	return &inferencev1.ListRoutesResponse{Routes: c.s.Routes()}, nil
}

func (c *controlService) GetStats(ctx context.Context, req *inferencev1.GetStatsRequest) (*inferencev1.GetStatsResponse, error) {
	versions, err := c.s.Stats(req.GetEnvironment(), req.GetModel())
	if err != nil {
		return nil, apierr.Status(ctx, c.s.log, err).Err()
	}
	return &inferencev1.GetStatsResponse{Versions: versions}, nil
}
